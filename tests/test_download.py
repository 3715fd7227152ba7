"""`batchtts download` against a local stand-in for the hub: mirror endpoints, pinning, offline reuse, errors."""

import json
import socket

import pytest
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.engines.download import LOCK_NAME
from tests.hubserver import FakeHub

# The hub layout: the repository's root is the official ckpt/ folder.
FILES = {"llm/config.json": b'{"hidden_size": 8}', "flow/flow.pt": b"\x00" * 4096, "README.md": b"# tiny"}


def invoke(*args, env=None):
    extra = [] if "--campplus-url" in args else ["--campplus-url", ""]  # no GitHub from the tests
    return CliRunner().invoke(main, ["download", *args, *extra], env=env or {})


def test_download_from_an_endpoint_then_reuse_offline_without_a_request(tmp_path):
    with FakeHub("zai-org/GLM-TTS", FILES) as hub:
        result = invoke("--endpoint", hub.url, "--local-dir", str(tmp_path / "m"), "--max-workers", "2")
        assert result.exit_code == 0, result.output
        assert f"downloaded from {hub.url}" in result.output
        for name, data in FILES.items():
            assert (tmp_path / "m" / name).read_bytes() == data
        lock = json.loads((tmp_path / "m" / LOCK_NAME).read_text())
        assert lock["commit"] == hub.commit and lock["endpoint"] == hub.url and lock["files"]["README.md"] == 6
        seen = len(hub.requests)
        again = invoke("--endpoint", hub.url, "--local-dir", str(tmp_path / "m"))
        offline = invoke("--local-dir", str(tmp_path / "m"), env={"HF_HUB_OFFLINE": "1"})
        assert again.exit_code == offline.exit_code == 0
        assert "nothing fetched" in again.output and "nothing fetched" in offline.output
        assert len(hub.requests) == seen  # the complete copy was reused without touching the network


def test_hf_endpoint_environment_variable_selects_the_mirror(tmp_path):
    with FakeHub("zai-org/GLM-TTS", FILES) as hub:
        result = invoke("--local-dir", str(tmp_path / "m"), env={"HF_ENDPOINT": hub.url})
        assert result.exit_code == 0, result.output
        assert any(path.startswith("/api/models/zai-org/GLM-TTS") for _, path in hub.requests)


def test_an_incomplete_copy_is_completed(tmp_path):
    with FakeHub("zai-org/GLM-TTS", FILES) as hub:
        assert invoke("--endpoint", hub.url, "--local-dir", str(tmp_path / "m")).exit_code == 0
        (tmp_path / "m" / "flow/flow.pt").unlink()
        offline = invoke("--local-dir", str(tmp_path / "m"), env={"HF_HUB_OFFLINE": "1"})
        assert offline.exit_code == 4 and "is incomplete (1 files missing)" in offline.output
        result = invoke("--endpoint", hub.url, "--local-dir", str(tmp_path / "m"))
        assert result.exit_code == 0 and (tmp_path / "m" / "flow/flow.pt").stat().st_size == 4096


def test_unreachable_hub_names_the_endpoint_and_how_to_use_a_mirror(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    url = f"http://127.0.0.1:{port}"
    result = invoke("--endpoint", url, "--local-dir", str(tmp_path / "m"), env={"HF_HUB_DOWNLOAD_TIMEOUT": "2"})
    assert result.exit_code == 4
    assert (
        f"cannot reach the model hub at {url}" in result.output and "HF_ENDPOINT=https://hf-mirror.com" in result.output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--repo", "nobody/nothing"], "was not found"), (["--revision", "v9"], "has no revision 'v9'")],
)
def test_missing_repo_or_revision_is_a_clear_error(tmp_path, args, message):
    with FakeHub("zai-org/GLM-TTS", FILES) as hub:
        result = invoke("--endpoint", hub.url, "--local-dir", str(tmp_path / "m"), *args)
    assert result.exit_code == 4 and message in result.output


def test_with_hf_endpoint_set_every_file_comes_through_the_mirror_campplus_included(tmp_path, monkeypatch):
    """No --campplus-url: the CAM++ model comes from CosyVoice's hub repository through the same mirror, checked
    against the pinned git blob id, and no connection goes anywhere but the mirror."""
    from batchtts.engines.glmtts import assets

    campplus = b"onnx bytes of the CAM++ export" * 100
    monkeypatch.setattr(assets, "CAMPPLUS_BLOB", assets.git_blob_id(campplus))  # pin the stand-in's file
    monkeypatch.setattr(assets, "CAMPPLUS_URL", "https://raw.githubusercontent.invalid/campplus.onnx")
    connected = []
    real_connect = socket.socket.connect

    def connect(self, address):
        connected.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    others = {assets.CAMPPLUS_HUB_REPO: {assets.CAMPPLUS_HUB_FILE: campplus}}
    with FakeHub("zai-org/GLM-TTS", FILES, others=others) as hub:
        got = CliRunner().invoke(main, ["download", "--local-dir", str(tmp_path / "m")], env={"HF_ENDPOINT": hub.url})
        port = int(hub.url.rsplit(":", 1)[1])
    assert got.exit_code == 0, got.output
    assert (tmp_path / "m" / "frontend" / "campplus.onnx").read_bytes() == campplus
    assert ("GET", f"/{assets.CAMPPLUS_HUB_REPO}/resolve/main/campplus.onnx") in hub.requests
    assert connected and all(a[:2] == ("127.0.0.1", port) for a in connected), connected


def test_without_a_hub_copy_the_error_names_both_ways_to_give_the_speaker_model(tmp_path, monkeypatch):
    from batchtts.engines.glmtts import assets

    monkeypatch.setattr(assets, "CAMPPLUS_URL", "http://127.0.0.1:9/campplus.onnx")  # GitHub unreachable
    with FakeHub("zai-org/GLM-TTS", FILES) as hub:  # the mirror has no CosyVoice repository
        got = CliRunner().invoke(main, ["download", "--local-dir", str(tmp_path / "m")], env={"HF_ENDPOINT": hub.url})
    assert got.exit_code == 4
    assert "not found" in got.output and "--campplus-url" in got.output and "GLMTTS_CAMPPLUS" in got.output
