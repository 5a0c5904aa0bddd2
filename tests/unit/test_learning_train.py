"""LightGBM training and TrainedModel as the detector's Model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.learning.metrics import assessment_metrics
from fraudstream.learning.train import TrainedModel, train_model
from fraudstream.pipeline.core import Model


def synthetic_frame(seed: int = 0, n: int = 6000, rate_bias: float = -5.0) -> pd.DataFrame:
    """Every feature, with the fraud log-odds depending on two of them (about 2 % frauds)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURE_NAMES)))
    logit = rate_bias + 2.0 * x[:, 0] + 1.5 * x[:, 4]
    frame = pd.DataFrame(x, columns=FEATURE_NAMES)
    frame["is_fraud"] = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame["customer_id"] = rng.integers(0, 500, n)
    frame["day"] = rng.integers(0, 7, n)
    return frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame()


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame) -> TrainedModel:
    return train_model(frame, FEATURE_NAMES, params={"num_threads": 1}, num_boost_round=60)


def as_features(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {name: frame[name].to_numpy() for name in FEATURE_NAMES}


def test_deterministic(frame: pd.DataFrame, model: TrainedModel) -> None:
    again = train_model(frame, FEATURE_NAMES, params={"num_threads": 1}, num_boost_round=60)
    assert again.model_string() == model.model_string()


def test_learns_the_signal(model: TrainedModel) -> None:
    test = synthetic_frame(seed=1)
    probs = model.predict_frame(test)
    m = assessment_metrics(test.is_fraud, probs, test.customer_id, test.day, top_k_list=(20,))
    assert m["auc_roc"] is not None and m["auc_roc"] > 0.9
    assert m["average_precision"] is not None and m["average_precision"] > 0.4


def test_default_is_unweighted_and_calibrated(frame: pd.DataFrame, model: TrainedModel) -> None:
    assert model.params["scale_pos_weight"] == 1.0  # selected on validation weeks (module doc)
    assert model.train_info == {"n_rows": len(frame), "n_fraud": int(frame.is_fraud.sum())}
    assert model.predict_frame(frame).mean() == pytest.approx(frame.is_fraud.mean(), rel=1e-6)


def test_imbalance_weight_and_calibration(frame: pd.DataFrame) -> None:
    n_pos = int(frame.is_fraud.sum())
    model = train_model(frame, FEATURE_NAMES, params={"num_threads": 1, "scale_pos_weight": "ratio"},
                        num_boost_round=60)
    assert model.params["scale_pos_weight"] == pytest.approx((len(frame) - n_pos) / n_pos)
    # Calibration in the large: training probabilities average to the training fraud rate...
    assert model.predict_frame(frame).mean() == pytest.approx(frame.is_fraud.mean(), rel=1e-6)
    assert model.score_offset > 0  # the weighted model over-estimates, the offset pulls it down
    # ... and so, roughly, do unseen ones; without it they are twice as high or more.
    test = synthetic_frame(seed=2)
    calibrated = model.predict_frame(test)
    uncalibrated = train_model(
        frame, FEATURE_NAMES, params={"num_threads": 1, "scale_pos_weight": "ratio"}, num_boost_round=60,
        calibrate=False,
    ).predict_frame(test)
    assert abs(calibrated.mean() - test.is_fraud.mean()) < 0.25 * test.is_fraud.mean()
    assert uncalibrated.mean() > 2 * calibrated.mean()
    # Only the bias moved: same ranking.
    order = np.argsort(calibrated, kind="stable")
    assert (np.diff(uncalibrated[order]) >= -1e-12).all()


def test_explicit_imbalance_params(frame: pd.DataFrame) -> None:
    m = train_model(
        frame, FEATURE_NAMES, params={"scale_pos_weight": 4.0, "num_threads": 1}, num_boost_round=5
    )
    assert m.params["scale_pos_weight"] == 4.0
    m = train_model(frame, FEATURE_NAMES, params={"is_unbalance": True, "num_threads": 1}, num_boost_round=5)
    assert "scale_pos_weight" not in m.params and m.params["is_unbalance"] is True
    m = train_model(frame, FEATURE_NAMES, params={"num_threads": 1}, num_boost_round=5, calibrate=False)
    assert m.score_offset == 0.0


def test_predict_implements_the_model_protocol(frame: pd.DataFrame, model: TrainedModel) -> None:
    model = dataclasses.replace(model, explain_min_prob=0.0)  # explain every row
    typed: Model = model  # structural: version + predict
    probs, contributions, names = typed.predict(as_features(frame.iloc[:300]))
    assert names == FEATURE_NAMES
    assert probs.shape == (300,) and ((probs >= 0) & (probs <= 1)).all()
    assert contributions is not None and contributions.shape == (300, len(FEATURE_NAMES))
    np.testing.assert_allclose(probs, model.predict_frame(frame.iloc[:300]), rtol=0, atol=1e-12)
    # Contributions plus LightGBM's bias column are the raw score; the signal features dominate.
    full = model.booster.predict(frame[FEATURE_NAMES].to_numpy()[:300], pred_contrib=True)
    np.testing.assert_allclose(contributions, full[:, :-1])
    raw = model.booster.predict(frame[FEATURE_NAMES].to_numpy()[:300], raw_score=True)
    np.testing.assert_allclose(contributions.sum(axis=1) + full[:, -1], raw, atol=1e-9)
    top = np.abs(contributions).mean(axis=0).argsort()[::-1][:2]
    assert {FEATURE_NAMES[i] for i in top} == {FEATURE_NAMES[0], FEATURE_NAMES[4]}


def test_contributions_only_above_explain_threshold(frame: pd.DataFrame, model: TrainedModel) -> None:
    m = TrainedModel.from_model_string(model.model_string(), FEATURE_NAMES, score_offset=model.score_offset)
    m.explain_min_prob = 0.5
    features = as_features(frame)
    probs, contributions, _ = m.predict({**features, "EXTRA": np.zeros(len(frame))})  # extras ignored
    assert contributions is not None
    low = probs < 0.5
    assert low.any() and (~low).any()
    assert (contributions[low] == 0).all()
    assert (np.abs(contributions[~low]).sum(axis=1) > 0).all()
    m.explain = False
    probs2, none, _ = m.predict(features)
    assert none is None and np.array_equal(probs, probs2)


def test_empty_batch_and_missing_feature(model: TrainedModel) -> None:
    empty = {name: np.zeros(0) for name in FEATURE_NAMES}
    probs, contributions, names = model.predict(empty)
    assert (
        probs.shape == (0,) and contributions is not None and contributions.shape == (0, len(FEATURE_NAMES))
    )
    with pytest.raises(KeyError):
        model.predict({name: np.zeros(2) for name in FEATURE_NAMES[1:]})


def test_nan_features_are_missing_values(model: TrainedModel, frame: pd.DataFrame) -> None:
    features = as_features(frame.iloc[:10])
    features[FEATURE_NAMES[0]] = np.full(10, np.nan)
    probs, _, _ = model.predict(features)
    assert np.isfinite(probs).all()


def test_model_string_round_trip(frame: pd.DataFrame, model: TrainedModel) -> None:
    loaded = TrainedModel.from_model_string(
        model.model_string(), FEATURE_NAMES, params=model.params, score_offset=model.score_offset, version="7"
    )
    assert loaded.version == "7" and loaded.num_boost_round == 60 and loaded.num_threads == 1
    a = model.predict(as_features(frame))
    b = loaded.predict(as_features(frame))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="feature names"):
        TrainedModel.from_model_string(model.model_string(), list(reversed(FEATURE_NAMES)))
    with pytest.raises(ValueError, match="unreadable"):
        TrainedModel.from_model_string("not a model", FEATURE_NAMES)


def test_training_needs_both_classes(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="both classes"):
        train_model(frame[~frame.is_fraud], FEATURE_NAMES)
    with pytest.raises(ValueError, match="no features"):
        train_model(frame, [])


def test_subset_of_features(frame: pd.DataFrame) -> None:
    names = FEATURE_NAMES[:5]
    m = train_model(frame, names, params={"num_threads": 1}, num_boost_round=10)
    probs, contributions, got = m.predict(as_features(frame.iloc[:5]))
    assert got == names and contributions is not None and contributions.shape == (5, 5)
