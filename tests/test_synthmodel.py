"""The synthetic model writer behind the ingest benchmark (bench/synthmodel.py)."""

import importlib.util
import itertools
import json
import struct
from pathlib import Path
from types import ModuleType

import pytest

SYNTHMODEL_PATH = Path(__file__).resolve().parent.parent / "bench" / "synthmodel.py"
TOTAL_BYTES = 64 * 1024
SHARDS = 3


def _load_synthmodel() -> ModuleType:
    # bench/ is a folder of scripts, not a package: load the module from its path.
    spec = importlib.util.spec_from_file_location("synthmodel", SYNTHMODEL_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synthmodel = _load_synthmodel()


def _build(out: Path, seed: int = 0) -> list[Path]:
    files: list[Path] = synthmodel.build_model(
        out, total_bytes=TOTAL_BYTES, shards=SHARDS, seed=seed
    )
    return files


def _shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model")
    _build(out)
    return out


def test_writes_every_file_of_a_sharded_checkpoint(tmp_path: Path) -> None:
    written = _build(tmp_path)

    expected = [f"model-{i:05d}-of-00003.safetensors" for i in (1, 2, 3)] + [
        "model.safetensors.index.json",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "README.md",
    ]
    assert [p.name for p in written] == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)


def test_total_size_is_close_to_the_request(model: Path) -> None:
    index = json.loads((model / "model.safetensors.index.json").read_text())
    total = index["metadata"]["total_size"]

    assert 0.9 * TOTAL_BYTES <= total <= TOTAL_BYTES
    assert total == sum(synthmodel.check_safetensors(p)["data_bytes"] for p in _shards(model))


def test_safetensors_headers_parse_and_tensors_tile_the_file(model: Path) -> None:
    for shard in _shards(model):
        info = synthmodel.check_safetensors(shard)
        size = shard.stat().st_size

        assert struct.unpack("<Q", shard.read_bytes()[:8])[0] == info["header_len"]
        assert info["header_len"] % 8 == 0
        assert info["metadata"] == {"format": "pt"}
        assert len(info["tensors"]) > 1
        assert 8 + info["header_len"] + info["data_bytes"] == size
        spans = sorted(tuple(t["data_offsets"]) for t in info["tensors"].values())
        assert spans[0][0] == 0
        assert spans[-1][1] == info["data_bytes"]
        assert all(end == next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
        assert {t["dtype"] for t in info["tensors"].values()} <= {"F16", "F32"}


def test_tensor_names_are_llama_like(model: Path) -> None:
    names = set().union(*(synthmodel.check_safetensors(p)["tensors"] for p in _shards(model)))

    assert "model.embed_tokens.weight" in names
    assert "model.layers.0.self_attn.q_proj.weight" in names
    assert "model.layers.2.mlp.down_proj.weight" in names
    assert "lm_head.weight" in names
    config = json.loads((model / "config.json").read_text())
    assert config["model_type"] == "llama"
    layers = {n.split(".")[2] for n in names if n.startswith("model.layers.")}
    assert len(layers) == config["num_hidden_layers"]


def test_index_weight_map_matches_the_tensors_of_each_shard(model: Path) -> None:
    index = json.loads((model / "model.safetensors.index.json").read_text())
    from_shards = {
        name: shard.name
        for shard in _shards(model)
        for name in synthmodel.check_safetensors(shard)["tensors"]
    }

    assert index["weight_map"] == from_shards


def test_card_tokenizer_and_configs_are_well_formed(model: Path) -> None:
    card = (model / "README.md").read_text()
    front_matter = card.split("---\n")[1]
    assert "license: apache-2.0" in front_matter.splitlines()

    tokenizer = json.loads((model / "tokenizer.json").read_text())
    vocab, merges = tokenizer["model"]["vocab"], tokenizer["model"]["merges"]
    assert tokenizer["model"]["type"] == "BPE"
    assert sorted(vocab.values()) == list(range(len(vocab)))
    for merge in merges:
        left, right = merge.split(" ")
        assert left in vocab
        assert right in vocab
        assert left + right in vocab
    config = json.loads((model / "config.json").read_text())
    assert config["vocab_size"] == len(vocab)
    for name in ("generation_config.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert isinstance(json.loads((model / name).read_text()), dict)


def test_same_seed_writes_identical_files(model: Path, tmp_path: Path) -> None:
    _build(tmp_path)

    assert _contents(tmp_path) == _contents(model)


def test_another_seed_writes_other_tensor_bytes(model: Path, tmp_path: Path) -> None:
    _build(tmp_path, seed=1)

    for ours, theirs in zip(_shards(model), _shards(tmp_path), strict=True):
        assert synthmodel.check_safetensors(ours) == synthmodel.check_safetensors(theirs)
        assert ours.read_bytes() != theirs.read_bytes()


def test_shards_differ_from_each_other(model: Path) -> None:
    data = []
    for shard in _shards(model):
        info = synthmodel.check_safetensors(shard)
        data.append(shard.read_bytes()[8 + info["header_len"] :])

    common = min(len(d) for d in data)
    assert len({d[:common] for d in data}) == len(data)


def test_chunks_of_a_large_shard_are_not_identical(tmp_path: Path) -> None:
    # Three 4 MiB chunks and a partial one: every chunk gets its own prefix.
    synthmodel.build_model(tmp_path, total_bytes=14 * 1024 * 1024, shards=1)
    shard = _shards(tmp_path)[0]
    info = synthmodel.check_safetensors(shard)
    data = shard.read_bytes()[8 + info["header_len"] :]
    chunk = synthmodel.CHUNK_SIZE

    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    assert len(chunks) == 4
    assert len({c[:16] for c in chunks}) == 4
    assert len(set(chunks[:3])) == 3


def test_check_safetensors_rejects_a_gap(tmp_path: Path) -> None:
    header = json.dumps({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(12))

    with pytest.raises(ValueError, match="cover 8 bytes"):
        synthmodel.check_safetensors(path)


def test_check_safetensors_rejects_a_wrong_span(tmp_path: Path) -> None:
    header = json.dumps({"t": {"dtype": "F16", "shape": [3], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))

    with pytest.raises(ValueError, match="needs 6"):
        synthmodel.check_safetensors(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2G", 2 * 1024**3), ("512m", 512 * 1024**2), ("64KiB", 65536), ("1.5K", 1536), ("100", 100)],
)
def test_parse_size_uses_binary_suffixes(text: str, expected: int) -> None:
    assert synthmodel.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "2X", "-1G", "0"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        synthmodel.parse_size(text)


def test_command_line_prints_files_and_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert synthmodel.main([str(tmp_path / "m"), "--size", "64K", "--shards", "2"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    assert "model-00002-of-00002.safetensors" in lines[1]
    total = sum(p.stat().st_size for p in (tmp_path / "m").iterdir())
    assert lines[-1].split()[0] == f"{total:,}"
