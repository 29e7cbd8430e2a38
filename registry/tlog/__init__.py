"""The registry's transparency log: what it signs and decides, appended to a C2SP tiled log.

`attestations.tlog` is the pure trust core (hashes, proofs, checkpoints, tile paths); this
package stores it as files (`files`), keeps the log key (`key`), appends inside a database
transaction (`append`) and verifies a log folder offline (`verify`).
"""
