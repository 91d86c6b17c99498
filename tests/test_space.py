"""Space files before any trial: the checks build what the file can actually produce (its values
together, not each alone beside the defaults), and command-line overrides win over the file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from common.errors import UserError
from search.space import load_space, parse_space

SPACE = Path("my-space.yaml")


def model_space(arch: str, params: dict) -> dict:
    return {"model": {"arch": arch, arch: params}}


def test_values_that_fit_together_pass_whatever_the_defaults() -> None:
    """600 channels at growth 1.0 are 600 wide; the default growth (2.0) would make 4800."""
    parse_space(model_space("cnn2d", {"channels": 600, "growth": 1.0, "depth": 4}), SPACE)


def test_a_failing_mix_names_the_file_values_that_make_it() -> None:
    params = {"channels": {"int": [600, 700]}, "growth": {"choice": [1.0, 2.0]}, "depth": 4}
    with pytest.raises(UserError) as err:
        parse_space(model_space("cnn2d", params), SPACE)
    message = str(err.value)
    assert message.startswith("my-space.yaml: model.params.growth: 2.0 makes a layer 4800 channels wide")
    assert message.endswith("when model.cnn2d.channels is 600 and model.cnn2d.growth is 2.0")
    assert "\n" not in message


def test_values_fine_alone_but_too_wide_together_are_refused() -> None:
    """Each value alone beside the defaults is at most 1024 channels wide; together 64 x 3**5."""
    params = {"channels": {"choice": [16, 64]}, "growth": {"choice": [1.0, 3.0]}, "depth": {"int": [2, 6]}}
    with pytest.raises(UserError, match="15552 channels wide") as err:
        parse_space(model_space("cnn2d", params), SPACE)
    for part in ("model.cnn2d.channels is 64", "model.cnn2d.growth is 3.0", "model.cnn2d.depth is 6"):
        assert part in str(err.value)


def test_an_inner_choice_is_checked_too() -> None:
    with pytest.raises(UserError, match=r"model\.params\.kernel_size: 4 must be odd.*model\.resnet\.kernel_size is 4"):
        parse_space(model_space("resnet", {"kernel_size": {"choice": [3, 4, 5]}}), SPACE)


def test_an_int_range_is_checked_up_to_the_last_step_it_reaches() -> None:
    """depth 2, 5 or 8: 8 blocks of 32 x 2**i end at 4096 channels, the limit; 9 would be over it
    (no pooling: 8 pools of 2 would also need more than the default input's 129 frames)."""
    wide = {"channels": 32, "growth": 2.0, "pool_size": 1}
    parse_space(model_space("cnn2d", {"depth": {"int": [2, 9, 3]}, **wide}), SPACE)
    with pytest.raises(UserError, match="model.cnn2d.depth is 9"):
        parse_space(model_space("cnn2d", {"depth": {"int": [2, 9]}, **wide}), SPACE)


def test_each_option_of_a_selector_is_checked_with_its_own_values() -> None:
    raw = {"optimizer": {"name": {"choice": ["adam", "sgd"]}, "sgd": {"momentum": {"choice": [0.0, 0.9]}}}}
    raw["optimizer"]["sgd"]["nesterov"] = True
    with pytest.raises(UserError, match=r"optimizer\.nesterov: True needs .*when optimizer\.sgd\.momentum is 0\.0"):
        parse_space(raw, SPACE)


def test_a_shorter_max_epochs_takes_the_file_grace_period_with_it(caplog: pytest.LogCaptureFixture) -> None:
    """`--space baseline.yaml --max-epochs 3`: a quick look at the baseline (grace period 100)."""
    space = load_space("baseline.yaml")
    with caplog.at_level(logging.WARNING, logger="search.space"):
        quick = space.with_search(max_epochs=3, num_samples=None)
    assert (quick.search.max_epochs, quick.search.grace_period) == (3, 3)
    assert [record.getMessage() for record in caplog.records] == ["search.grace_period: 100 -> 3 to fit --max-epochs 3"]
    caplog.clear()
    assert space.with_search(max_epochs=200).search.grace_period == 100
    assert not caplog.records


def test_values_given_together_may_still_contradict_each_other() -> None:
    space = load_space("baseline.yaml")
    with pytest.raises(UserError, match=r"with --max-epochs 3 --grace-period 5: search\.grace_period: 5 is above"):
        space.with_search(max_epochs=3, grace_period=5)
    with pytest.raises(UserError, match=r"yaml with --max-epochs 0: search\.max_epochs: 0 must be at least 1"):
        space.with_search(max_epochs=0)


def test_an_int_step_below_one_is_refused_before_any_trial() -> None:
    with pytest.raises(UserError, match=r"model\.cnn2d\.depth: 0 must be at least 1 as int's step"):
        parse_space(model_space("cnn2d", {"depth": {"int": [2, 4, 0]}}), SPACE)


def test_space_features_section_errors_name_the_key(tmp_path: Path) -> None:
    space = tmp_path / "bad.yaml"
    for section, key in [
        ("{kind: cqt}", "features.kind"),
        ("{hop_length: {uniform: [256, 512]}}", "features.hop_length"),
        ("{hop: 512}", "hop"),
        ("{mel: {n_mels: 64}}", "n_mels"),
        ("{kind: {choice: []}}", "features.kind"),
    ]:
        space.write_text(f"features: {section}\n")
        with pytest.raises(UserError, match=key) as err:
            load_space(space).feature_settings()
        assert str(space) in str(err.value)
