"""The frozen Experiment spec: validated when built, a value (hash, frozen, JSON/YAML round
trip), and ``analyze`` / ``analyze_aggregates`` give the same results with it as with
the keyword form."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from engagelab.errors import FrozenSpecError, SpecError, ValidationError
from engagelab.experiments import (
    Experiment,
    Metric,
    Sequential,
    aggregate,
    analyze,
    analyze_aggregates,
)


@pytest.fixture(scope="module")
def df():
    rng = np.random.default_rng(7)
    n = 3000
    arm = rng.choice(["A", "B", "C"], n, p=[0.4, 0.3, 0.3])
    pre = rng.gamma(2.0, 5.0, n)
    lift = np.select([arm == "B", arm == "C"], [0.03, 0.01], 0.0)
    clicked = (rng.random(n) < 0.1 + lift).astype(int)
    orders = rng.poisson(1.0 + 5 * lift, n)
    revenue = pre * 0.8 + orders * rng.gamma(3.0, 4.0, n)
    return pd.DataFrame(
        {
            "campaign": rng.choice(["spring", "summer"], n),
            "variant": arm,
            "clicked": clicked,
            "orders": orders,
            "orders_pre": rng.poisson(1.0, n),
            "revenue": revenue,
            "revenue_pre": pre,
        }
    )


#: every analysis option away from its default
KEYWORDS = dict(
    arm_col="variant",
    control="A",
    metrics=["clicked:proportion", "revenue:mean", "revenue:ratio:orders"],
    experiment_col="campaign",
    covariate="revenue_pre",
    denominator_covariate="orders_pre",
    alpha=0.1,
    correction="bh",
    test="z",
    alternative="greater",
    rel_ci="fieller",
    cuped_theta="pooled",
    weights={"A": 0.4, "B": 0.3, "C": 0.3},
    arms=["B", "C"],
    sequential=True,
    tuning_n=2000,
    gs_information=[0.5, 1.0],
    gs_look=1,
    gs_spending="power",
    gs_rho=3.0,
    bayes_draws=5000,
    seed=11,
)


def spec() -> Experiment:
    return Experiment(
        control="A",
        metrics=("clicked:proportion", "revenue:mean", "revenue:ratio:orders"),
        arm_col="variant",
        experiment_col="campaign",
        covariate="revenue_pre",
        denominator_covariate="orders_pre",
        alpha=0.1,
        correction="bh",
        test="z",
        alternative="greater",
        rel_ci="fieller",
        cuped_theta="pooled",
        weights={"A": 0.4, "B": 0.3, "C": 0.3},
        arms=("B", "C"),
        sequential=Sequential(
            always_valid=True,
            tuning_n=2000,
            information=(0.5, 1.0),
            look=1,
            spending="power",
            rho=3.0,
        ),
        bayes_draws=5000,
        seed=11,
    )


def test_every_field_is_set_away_from_its_default():
    e, default = spec(), Experiment(control="A", metrics=("x:mean",))
    for f in dataclasses.fields(Experiment):
        if f.name not in ("control", "metrics"):
            assert getattr(e, f.name) != getattr(default, f.name), f.name
    for f in dataclasses.fields(Sequential):
        assert getattr(e.sequential, f.name) != getattr(Sequential(), f.name), f.name


def test_keyword_form_builds_the_same_spec():
    assert Experiment.from_options(**KEYWORDS) == spec()


def test_spec_and_keyword_forms_give_identical_results(df):
    by_spec = analyze(df, spec())
    by_keywords = analyze(df, **KEYWORDS)
    by_name = analyze(df, experiment=spec())  # what Workspace.analyze passes
    t = by_spec.to_pandas()
    assert {"seq_p", "gs_bound", "bayes_p_best", "rel_ci_low"} <= set(t.columns)
    assert len(t) == 2 * 3 * 2  # experiments x metrics x non-control arms
    assert (t.test == "z").all() and t.metric.str.contains("CUPED").sum() == 0
    assert t.kind.str.contains("CUPED").all()
    for other in (by_keywords, by_name):
        pd.testing.assert_frame_equal(other.to_pandas(), t)
        pd.testing.assert_frame_equal(other.arms, by_spec.arms)
        assert other.alpha == by_spec.alpha == 0.1 and other.correction == "bh"
        assert {k: v.p_value for k, v in other.srm.items()} == {
            k: v.p_value for k, v in by_spec.srm.items()
        }


def test_analyze_aggregates_takes_the_spec_too(df):
    e = spec()
    agg = aggregate(df, list(e.metrics), e.arm_col, e.experiment_col)
    kw = {k: v for k, v in KEYWORDS.items() if k not in ("arm_col", "experiment_col")}
    kw["metrics"] = list(e.metrics)  # parsed metrics (aggregate named their columns)
    a = analyze_aggregates(agg, e).to_pandas()
    b = analyze_aggregates(agg, **kw).to_pandas()
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, analyze(df, e).to_pandas())


def test_keywords_with_a_spec_override_its_fields(df):
    e = spec()
    over = analyze(df, e, alpha=0.05, correction="holm", gs_look=2).to_pandas()
    want = analyze(df, **{**KEYWORDS, "alpha": 0.05, "correction": "holm", "gs_look": 2})
    pd.testing.assert_frame_equal(over, want.to_pandas())
    assert not over.equals(analyze(df, e).to_pandas())


def test_defaults_match_the_old_defaults(df):
    plain = analyze(df, arm_col="variant", control="A", metrics=["clicked:proportion"])
    e = Experiment(control="A", metrics=(Metric("clicked", "proportion"),), arm_col="variant")
    pd.testing.assert_frame_equal(analyze(df, e).to_pandas(), plain.to_pandas())
    assert "seq_p" not in plain.to_pandas().columns and plain.correction == "holm"


def test_round_trips_through_json_and_yaml_and_is_a_value():
    e = spec()
    for back in (Experiment.from_json(e.to_json()), Experiment.from_yaml(e.to_yaml())):
        assert back == e and hash(back) == hash(e)
        assert back.to_dict() == e.to_dict()
    d = e.to_dict()
    assert d["metrics"][0] == {
        "name": "clicked",
        "kind": "proportion",
        "column": "clicked",
        "denominator": None,
        "covariate": "revenue_pre",
        "lower_is_better": False,
        "denominator_covariate": None,
    }
    assert d["sequential"] == {
        "always_valid": True,
        "tuning_n": 2000,
        "information": [0.5, 1.0],
        "look": 1,
        "spending": "power",
        "rho": 3.0,
    }
    assert d["weights"] == {"A": 0.4, "B": 0.3, "C": 0.3} and d["arms"] == ["B", "C"]
    with pytest.raises(FrozenSpecError, match=r"use experiment\.replace\(alpha=\.\.\.\)"):
        e.alpha = 0.2
    with pytest.raises(FrozenSpecError, match=r"use sequential\.replace\(look=\.\.\.\)"):
        e.sequential.look = 2
    with pytest.raises(FrozenSpecError, match=r"use metric\.replace\(kind=\.\.\.\)"):
        e.metrics[0].kind = "mean"
    with pytest.raises(FrozenSpecError, match="read-only"):
        e.weights["A"] = 0.5
    assert e.replace(alpha=0.2).alpha == 0.2 and e.alpha == 0.1


def test_numbers_as_arms_are_kept_as_text():
    e = Experiment(control=0, metrics=("y:mean",), arms=(1, 2), weights={0: 1, 1: 1, 2: 2})
    assert e.control == "0" and e.arms == ("1", "2") and e.weights == {"0": 1, "1": 1, "2": 2}
    assert Experiment.from_json(e.to_json()) == e
    assert Experiment(control="A", metrics="y:mean", weights=[1, 1]).weights == (1, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 1.5}, "alpha == 1.5, must be in (0, 1)"),
        ({"correction": "fdr"}, "correction == 'fdr', must be one of"),
        ({"test": "t"}, "test == 't', must be one of"),
        ({"alternative": "up"}, "alternative == 'up', must be one of"),
        ({"rel_ci": "boot"}, "rel_ci == 'boot', must be one of"),
        ({"metrics": ()}, "metrics == [], must name at least one metric"),
        ({"metrics": ("a:mean", "a:mean")}, "metrics == ['a', 'a'], must have distinct names"),
        ({"metrics": ("a:median",)}, "kind == 'median'"),
        ({"metrics": ({"name": "a", "colour": 1},)}, "metrics[0].colour == 1, is not a metric"),
        ({"control": None}, "control == None, must be the control arm's value"),
        ({"arm_col": ""}, "arm_col == '', must be a column name (text)"),
        ({"denominator_covariate": "x"}, "denominator_covariate == 'x', needs covariate"),
        ({"weights": {"A": -1}}, "weights['A'] == -1, must be > 0"),
        ({"weights": "even"}, "weights == 'even', must be a mapping"),
        ({"arms": "B"}, "arms == 'B', must be a list of arm values"),
        ({"bayes_draws": 10}, "bayes_draws == 10, must be an integer >= 1000"),
        ({"seed": -1}, "seed == -1, must be an integer >= 0"),
        ({"sequential": "yes"}, "sequential == 'yes', must be Sequential options"),
        ({"sequential": {"looks": 2}}, "sequential.looks == 2, is not a sequential option"),
        ({"sequential": {"look": 2}}, "sequential.look == 2, needs information"),
        (
            {"sequential": {"information": (0.6, 0.4)}},
            "sequential.information == [0.6, 0.4], must be increasing fractions in (0, 1]",
        ),
        ({"sequential": {"tuning_n": 0}}, "sequential.tuning_n == 0, must be > 0"),
        ({"sequential": {"spending": "linear"}}, "sequential.spending == 'linear'"),
    ],
)
def test_bad_specs_fail_when_built_naming_the_field(kwargs, message):
    kw = {"control": "A", "metrics": ("clicked:proportion",), **kwargs}
    with pytest.raises(SpecError) as info:
        Experiment(**kw)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_keyword_form_names_the_keywords(df):
    kw = dict(arm_col="variant", control="A", metrics=["clicked:proportion"])
    with pytest.raises(ValidationError, match=r"^gs_look == 3, must be an integer in \[1, 2\]$"):
        analyze(df, **kw, gs_information=[0.5, 1.0], gs_look=3)
    with pytest.raises(ValidationError, match=r"^gs_information\[0\] == 2, must be in"):
        analyze(df, **kw, gs_information=[2])
    with pytest.raises(SpecError, match=r"^alpah == 0.1, is not an analysis option: alpha, "):
        analyze(df, **kw, alpah=0.1)
    with pytest.raises(SpecError, match=r"^control == None, is required$"):
        analyze(df, arm_col="variant", metrics=["clicked:proportion"])
    with pytest.raises(SpecError, match=r"^experiment == 'dict', must be an Experiment"):
        analyze(df, {"control": "A"})
