"""0.2's module paths keep importing for one release, as the very modules they became: Tune's
pickles and a 0.2 run's experiment.yaml name modules by path (issue 25, item 4)."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys

import pytest

from raysearch.rundir.experiment import DEFAULT_TRAINABLE, experiment_from_dict
from trainables.moved import MOVED, current


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_path_imports_as_the_module_it_became(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)
    assert importlib.import_module(new).__spec__.name == new  # the alias does not rename it


def test_an_old_path_warns_once_that_it_moved() -> None:
    code = ("import warnings; warnings.simplefilter('error')\n"
            "try:\n    import trainables.engine\nexcept DeprecationWarning as w:\n    print(w)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "trainables.engine moved to trainables.training.engine; the old path goes in the next release"


def test_a_function_pickled_under_an_old_path_loads_as_todays() -> None:
    from trainables.tune.functions import tune_trainable

    old = pickle.dumps(tune_trainable, protocol=0).replace(  # protocol 0: a global is "module\nname"
        b"trainables.tune.functions", b"trainables.trainable")
    assert b"trainables.trainable" in old and pickle.loads(old) is tune_trainable


def test_names_of_0_2s_evaluation_module_resolve_in_its_package() -> None:
    import trainables.evaluation as evaluation
    from trainables.evaluation.accuracy import test_split_accuracy
    from trainables.evaluation.attack_names import parse_attacks

    assert evaluation.test_split_accuracy is test_split_accuracy and evaluation.parse_attacks is parse_attacks
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        evaluation.nothing  # noqa: B018


def test_a_0_2_trainable_path_in_an_experiment_reads_as_todays() -> None:
    assert current("trainables.trainable:tune_trainable") == DEFAULT_TRAINABLE
    assert current("my_pkg.mod:fn") == "my_pkg.mod:fn"
    old = experiment_from_dict({"trainable": "trainables.trainable:tune_trainable", "epochs": 2}, "x")
    assert old.trainable == DEFAULT_TRAINABLE and "trainable" not in old.to_dict()
