"""nndl's own recipe past the book's record: its configuration, its cost model, and its ensemble's shared networks."""

import json

import pytest

from nndl.errors import ConfigError
from nndl.experiments import Context, get
from nndl.experiments.beyond import RECIPE, multiply_adds, training_cost
from nndl.experiments.ch6 import _rung_of, run_rung_many


def test_the_book_rungs_write_the_dicts_they_wrote_before_augmentation_existed():
    for experiment_id in ("ch6-relu", "ch6-dropout", "ch6-ensemble"):
        for quick in (False, True):
            data = get(experiment_id).settings(quick).to_dict()
            assert "augmentation" not in data and "autocast" not in data
    data = RECIPE.to_dict()
    assert data["augmentation"]["elastic_alpha"] > 0 and json.loads(json.dumps(data)) == data


def test_a_bad_augmentation_is_refused():
    with pytest.raises(ConfigError, match="augmentation"):
        RECIPE.replace(augmentation={})
    with pytest.raises(ConfigError, match="augmentation"):
        RECIPE.replace(augmentation=[2.0])
    with pytest.raises(ConfigError, match="autocast"):
        RECIPE.replace(autocast="float16")


def test_the_recipe_selects_on_validation_and_its_ensemble_shares_the_single_networks():
    single, record = get("beyond-single"), get("beyond-record")
    assert record.config.members == 5 and single.config.members == 1
    assert single.config.train.restore_best and single.config.train.schedule == "halve"
    for quick in (False, True):                           # the members of the vote are beyond-single's runs
        assert _rung_of(record.settings(quick).replace(members=1)) == "beyond-single"
    assert record.target == pytest.approx(0.9975) and record.better == "higher"
    assert single.target is None                          # the book has no number for it


def test_augmented_networks_are_not_trained_several_at_once():
    with pytest.raises(ConfigError, match="one at a time"):
        run_rung_many(RECIPE, [Context(seed=1), Context(seed=2)])


def test_multiply_adds_follow_the_layer_shapes():
    # the book's expanded-data network: 24x24x20x25 + 8x8x40x(20x25) + 640x100 + 100x10
    assert multiply_adds(get("ch6-expanded").config.net) == 288_000 + 1_280_000 + 64_000 + 1_000
    # the recipe: 24x24x32x25 + 8x8x64x(32x25) + 1024x1024 + 1024x10
    assert multiply_adds(RECIPE.net) == 460_800 + 3_276_800 + 1_048_576 + 10_240


def test_training_cost_counts_images_and_converts_a_speed_to_time():
    cost = training_cost(RECIPE.replace(members=5), images_per_second=1000)
    assert cost["images"] == 5 * 40 * 50_000
    assert cost["flops"] == cost["images"] * cost["flops_per_image"] == cost["images"] * 6 * multiply_adds(RECIPE.net)
    assert cost["seconds"] == pytest.approx(10_000.0)
    assert cost["gflops"] == pytest.approx(6 * multiply_adds(RECIPE.net) * 1000 / 1e9)
    assert "seconds" not in training_cost(RECIPE)


def test_the_quick_vote_uses_the_single_runs_checkpoints(tmp_path):
    pytest.importorskip("torch")
    from conftest import real_mnist_dir

    from nndl.experiments.runner import reproduce
    data = real_mnist_dir()
    if data is None:
        pytest.skip("the real MNIST files were not found (set NNDL_DATA)")
    quiet = dict(quick=True, out=tmp_path, data_dir=str(data), echo=lambda line: None)
    assert reproduce(["beyond-record"], seeds=[1], **quiet).ok
    checkpoints = sorted(p.name for p in (tmp_path / "runs" / "checkpoints").iterdir())
    assert checkpoints == ["beyond-single-s1-quick.ckpt", "beyond-single-s2-quick.ckpt"]
    run = json.loads((tmp_path / "beyond-record.json").read_text())["runs"][0]
    assert len(run["members"]) == 2 and 0.0 <= run["vote"] <= 1.0
    assert all(m["history"]["best_epoch"] is not None for m in run["members"])
