"""--audio off|optional|required and --audio_weights, resolved before any work."""
import pytest

from yt8m.pipeline import audio
from yt8m.pipeline.config import UsageError


def _env(tmp_path):
    return {audio.VGGISH_DIR_ENV: str(tmp_path), "HOME": str(tmp_path / "home")}


def test_default_dir_env_then_home(tmp_path):
    assert audio.default_vggish_dir({audio.VGGISH_DIR_ENV: "/x/v"}) == "/x/v"
    assert audio.default_vggish_dir({"HOME": "/h"}) == "/h/.cache/yt8m/vggish"


def test_off_does_nothing(tmp_path):
    plan = audio.resolve_audio("off", None, _env(tmp_path))
    assert plan.status == "off" and not plan.enabled and plan.notice is None
    assert plan.to_info() == {"mode": "off", "status": "off"}


def test_optional_without_weights_skips_with_one_notice(tmp_path):
    plan = audio.resolve_audio("optional", None, _env(tmp_path))
    assert plan.status == "skipped" and not plan.enabled and plan.weights is None
    assert str(tmp_path) in plan.reason and "vggish_model.ckpt" in plan.reason
    assert "--audio off" in plan.notice and "WITHOUT audio" in plan.notice
    assert plan.to_info()["status"] == "skipped" and plan.to_info()["reason"] == plan.reason


def test_required_without_weights_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--audio required.*vggish_model.ckpt"):
        audio.resolve_audio("required", None, _env(tmp_path))
    with pytest.raises(UsageError, match="does not exist"):
        audio.resolve_audio("required", str(tmp_path / "nope.ckpt"), _env(tmp_path))


def test_default_place_finds_v1_and_v2_checkpoints_and_pca(tmp_path):
    (tmp_path / "vggish_model.ckpt.index").write_bytes(b"x")
    plan = audio.resolve_audio("optional", None, _env(tmp_path))
    assert plan.enabled and plan.weights == str(tmp_path / "vggish_model.ckpt")
    assert plan.pca_params is None
    (tmp_path / "vggish_pca_params.npz").write_bytes(b"x")
    plan = audio.resolve_audio("required", None, _env(tmp_path))
    assert plan.enabled and plan.pca_params == str(tmp_path / "vggish_pca_params.npz")


def test_random_is_announced_and_recorded(tmp_path):
    plan = audio.resolve_audio("optional", "random", _env(tmp_path))
    assert plan.enabled and "RANDOM" in plan.notice
    assert plan.to_info()["random"] is True


def test_bad_mode(tmp_path):
    with pytest.raises(UsageError, match="--audio must be one of off, optional, required"):
        audio.resolve_audio("sometimes", None, _env(tmp_path))
