"""Search strategies as Optuna samplers: every sampler runs a constrained study on a tiny space, children of
evolution / aging come from their recorded parents (by mutation distance, by crossover's per-choice
inheritance, by the parents' ranks), and a seed fixes the whole sequence of archs."""

import optuna
import pytest
from optuna.trial import FixedTrial, TrialState, create_trial

from search_spaces import get_space
from search_spaces.mcunet import MCUNetSpace
from tinynas.errors import ConfigError
from tinynas.samplers import SAMPLERS, make_sampler
from tinynas.samplers.population import OPERATOR_KEY, PARENTS_KEY, rank_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Conditional parameters (depth 1 or 2 per stage) and a fixed-depth twin where choices line up one to one.
SPACE = get_space("mcunet", {"resolutions": [8, 16], "widths": [0.3, 0.5, 1.0], "depth_choices": [1, 2],
                             "head_channels": 64})
FIXED = get_space("mcunet", {"resolutions": [8, 12, 16], "widths": [0.3, 0.5, 0.75, 1.0], "depth_choices": [2],
                             "head_channels": 64})
POP = 8


def score(arch) -> float:
    """A cheap stand-in for accuracy: larger kernels and expand ratios score higher."""
    return float(sum(map(sum, arch.kernels)) + sum(map(sum, arch.expands)) + 10 * arch.width)


def cheap_objective(space, constrained=True, multi=True):
    def objective(trial):
        arch = space.sample(trial)
        trial.set_user_attr("arch", arch.to_dict())
        cost = arch.resolution * arch.width
        if constrained:
            trial.set_constraint("cost", cost / 8.0 - 1.0)  # roughly half the archs fit
        return (score(arch), cost) if multi else score(arch)

    return objective


def run(kind, space=SPACE, n=30, seed=0, multi=True, constrained=True, **cfg):
    study = optuna.create_study(directions=["maximize", "minimize"] if multi else ["maximize"],
                                sampler=make_sampler({"sampler": kind, "population_size": POP, **cfg}, seed,
                                                     space=space))
    study.optimize(cheap_objective(space, constrained, multi), n_trials=n)
    return study


def distance(space, a, b) -> float:
    """Fraction of choices (Optuna parameters) on which two archs differ."""
    pa, pb = space.params(a), space.params(b)
    keys = set(pa) | set(pb)
    return sum(pa.get(k) != pb.get(k) for k in keys) / len(keys)


def arch(space, t):
    return space.decode(t.user_attrs["arch"])


def children(study):
    return [t for t in study.trials if PARENTS_KEY in t.system_attrs]


@pytest.mark.parametrize("kind", SAMPLERS)
def test_every_sampler_runs_a_constrained_study_of_valid_archs(kind):
    study = run(kind)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 30
    for t in study.trials:
        a = arch(SPACE, t)
        SPACE.check(a)
        assert t.params == SPACE.params(a)  # the stored parameters describe the evaluated arch
        assert SPACE.sample(FixedTrial(t.params)) == a
    if kind in ("evolution", "aging"):
        assert len(children(study)) == 30 - POP  # random first population, then bred children


@pytest.mark.parametrize("kind", SAMPLERS)
def test_same_seed_gives_the_same_sequence_of_archs(kind):
    hashes = [[arch(SPACE, t).hash for t in run(kind, n=20, seed=s).trials] for s in (3, 3, 4)]
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


@pytest.mark.parametrize("kind", ["evolution", "aging"])
def test_mutants_stay_within_mutation_distance_of_their_parent(kind):
    study = run(kind, space=FIXED, n=40, mutation_ratio=1.0, mutate_prob=0.1)
    by_number = {t.number: arch(FIXED, t) for t in study.trials}
    kids = children(study)
    assert kids and all(t.system_attrs[OPERATOR_KEY] == "mutate" for t in kids)
    to_parent = [distance(FIXED, by_number[t.number], by_number[t.system_attrs[PARENTS_KEY][0]]) for t in kids]
    # Independent draws differ on most choices; a mutant (each choice resampled with p=0.1) on few.
    randoms = [distance(FIXED, by_number[i], by_number[j]) for i in range(POP) for j in range(i)]
    assert sum(to_parent) / len(to_parent) < 0.25 < 0.5 < sum(randoms) / len(randoms)
    assert all(0 < d for d in to_parent)  # a child differs from its parent


def test_crossover_children_inherit_every_choice_from_one_of_two_parents():
    study = run("evolution", space=FIXED, n=30, mutation_ratio=0.0)
    by_number = {t.number: t for t in study.trials}
    for t in children(study):
        a, b = (by_number[p].params for p in t.system_attrs[PARENTS_KEY])
        assert t.system_attrs[OPERATOR_KEY] == "crossover"
        assert all(v in (a[k], b[k]) for k, v in t.params.items())


def test_evolution_parents_are_the_best_finished_trials():
    # Single objective, no constraints: a parent must be among the top parent_ratio × POP earlier values.
    study = run("evolution", space=FIXED, n=40, multi=False, constrained=False)
    k = max(2, round(0.25 * POP))
    for t in children(study):
        earlier = sorted((u.value for u in study.trials if u.number < t.number), reverse=True)
        for p in t.system_attrs[PARENTS_KEY]:
            assert study.trials[p].value >= earlier[k - 1]


def test_evolution_prefers_feasible_parents():
    study = run("evolution", space=FIXED, n=40)
    for t in children(study):
        earlier = [u for u in study.trials if u.number < t.number]
        if sum(all(v <= 0 for v in u.constraints.values()) for u in earlier) >= max(2, round(0.25 * POP)):
            assert all(study.trials[p].constraints["cost"] <= 0 for p in t.system_attrs[PARENTS_KEY])


def test_aging_parents_come_from_the_most_recent_population():
    study = run("aging", space=FIXED, n=40, sample_size=2)
    kids = children(study)
    assert kids
    for t in kids:
        (p,) = t.system_attrs[PARENTS_KEY]
        assert t.number - POP <= p < t.number  # older trials have died


def test_conditional_parameters_no_earlier_trial_had_come_from_the_bred_child(monkeypatch):
    # The first population is all depth 1; the bred child has depth 2, whose block-1 parameters no earlier
    # trial suggested: they must still be the child's, not random draws.
    shallow = [SPACE.decode({"resolution": r, "width": w, "depths": [1] * 5, "kernels": [[3]] * 5,
                             "expands": [[3]] * 5}) for r in (8, 16) for w in (0.3, 0.5, 1.0)][:POP]
    deep = SPACE.decode({"resolution": 16, "width": 0.5, "depths": [2] * 5, "kernels": [[5, 7]] * 5,
                         "expands": [[6, 4]] * 5})
    monkeypatch.setattr(MCUNetSpace, "mutate", lambda self, a, rng, prob=0.1: deep)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler({"sampler": "aging", "population_size": len(shallow)}, 0,
                                                     space=SPACE))
    for a in shallow:
        study.enqueue_trial(SPACE.params(a))
    study.optimize(cheap_objective(SPACE), n_trials=len(shallow) + 1)
    assert arch(SPACE, study.trials[-1]) == deep


def test_rank_puts_feasible_first_then_pareto_rank_then_accuracy():
    def t(number, acc, sram, over=0.0):
        trial = create_trial(values=[acc, sram], constraints={"sram": over})
        trial.number = number
        return trial

    trials = [t(0, 0.9, 50, over=0.5), t(1, 0.8, 10), t(2, 0.7, 20), t(3, 0.95, 40), t(4, 0.6, 5),
              t(5, 0.99, 99, over=0.1)]
    directions = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    # front {3, 1, 4} by accuracy, then 2 (dominated by 1), then infeasible by violation: 5 (0.1), 0 (0.5)
    assert [x.number for x in rank_trials(trials, directions)] == [3, 1, 4, 2, 5, 0]


def test_make_sampler_names_bad_choices():
    with pytest.raises(ConfigError, match="search.sampler='cmaes' is unknown; allowed: tpe, random"):
        make_sampler({"sampler": "cmaes"}, 0)
    with pytest.raises(ConfigError, match="pass space="):
        make_sampler({"sampler": "aging"}, 0)
    with pytest.raises(ConfigError, match="sample_size=9 must be between 1 and population_size=8"):
        make_sampler({"sampler": "aging", "population_size": 8, "sample_size": 9}, 0, space=SPACE)
