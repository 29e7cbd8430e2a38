"""Readers for the containers pickles travel in, one module per format.

`sniff` tells which container a file is; `zip_reader` is the strict zip reader (PyTorch
checkpoints, `.npz`, `.keras`); `torch_legacy` the pre-1.6 stacked and tar layouts; `npy` the
`.npy` header; `compressed` the gzip / bz2 / xz / lzma / zlib / 7z wrappers (joblib's
included); `pickle_spans` delimits pickle streams; `issues` is what they all report.

Everything here is a pure function over bytes or a seekable binary stream. Nothing is ever
unpickled, imported, extracted to disk or executed: pickle streams are only *delimited* here
(with `pickletools.genops`, a disassembler that never resolves a global) and handed to the
pickle-machine emulator by the scanner.
"""
