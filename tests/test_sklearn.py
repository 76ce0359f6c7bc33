"""nndl.sklearn.NetworkClassifier: scikit-learn's estimator checks, and the estimator in real use."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from nndl.engine.feedforward import check_inputs  # noqa: E402
from nndl.errors import InputError  # noqa: E402
from nndl.sklearn import NetworkClassifier  # noqa: E402

#: Estimators covering nndl's options: softmax outputs; validation data held out for early stopping and the
#: halving schedule, with momentum and dropout; no hidden layer, float32, L1, chapter 1's large weights.
#: Every check passes for each, so none is marked expected-to-fail.
ESTIMATORS = [
    NetworkClassifier(random_state=0),
    NetworkClassifier(cost="log-likelihood", activation="relu", eta=0.1, random_state=0),
    NetworkClassifier(early_stopping=2, schedule="halve", patience=1, momentum=0.5, nesterov=True, dropout=0.2,
                      random_state=0),
    NetworkClassifier(hidden_layer_sizes=(), dtype="float32", cost="quadratic", init="large", lmbda=0.1,
                      regularization="l1", random_state=0),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda estimator: {})
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x / 16.0, y


def test_grid_search_on_digits(digits):
    x, y = digits
    search = GridSearchCV(NetworkClassifier(epochs=5, random_state=0), {"eta": [0.1, 1.0], "lmbda": [0.0, 1.0]}, cv=3)
    search.fit(x, y)
    assert set(search.best_params_) == {"eta", "lmbda"}
    assert search.best_params_["eta"] == 1.0                  # 5 epochs at eta 0.1 learn too little
    assert search.best_score_ > 0.85
    assert search.predict(x[:10]).shape == (10,)


def test_pipeline_on_raw_digits_reaches_a_sensible_accuracy(digits):
    x, y = load_digits(return_X_y=True)                    # 0..16 whole numbers, unscaled
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    model = make_pipeline(MinMaxScaler(), NetworkClassifier(epochs=10, random_state=0)).fit(x_train, y_train)
    assert model.score(x_test, y_test) > 0.9


def test_unscaled_pixel_like_features_are_accepted():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 4))                   # what nndl's own check refuses as 0-255 pixels
    y = (x[:, 0] > 128).astype(int)
    with pytest.raises(InputError):
        check_inputs(x, 4)
    check_inputs(x, 4, check_pixels=False)
    NetworkClassifier(epochs=2, eta=0.01, random_state=0).fit(x, y).predict(x)


def test_string_labels_and_probabilities(digits):
    x, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    model = NetworkClassifier(epochs=5, random_state=0).fit(x[:500], names[y[:500]])
    assert list(model.classes_) == sorted(names)
    predicted = model.predict(x[500:700])
    assert predicted.dtype.kind == "U" and set(predicted) <= set(names)
    assert model.score(x[500:700], names[y[500:700]]) > 0.8
    proba = model.predict_proba(x[500:700])
    assert proba.shape == (200, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], predicted)
    assert model.n_features_in_ == 64 and model.network_.sizes == [64, 30, 10]
    assert len(model.training_cost_) == 5 and model.evaluation_accuracy_ == []
    assert model.history_.stop_reason == "completed"


def test_network_shapes_and_precision():
    rng = np.random.default_rng(0)
    x, y = rng.random((30, 3)).astype(np.float32), np.arange(30) % 3
    model = NetworkClassifier(hidden_layer_sizes=(), dtype="float32", random_state=0).fit(x, y)
    assert model.network_.sizes == [3, 3] and model.network_.dtype == np.float32
    model = NetworkClassifier(hidden_layer_sizes=(5, 4), cost="log-likelihood", random_state=0).fit(x, y)
    assert model.network_.sizes == [3, 5, 4, 3]
    assert [layer.name for layer in model.network_.layers] == ["sigmoid", "sigmoid", "softmax"]


def test_random_state_makes_fit_deterministic(digits):
    x, y = digits
    a = NetworkClassifier(epochs=2, random_state=3).fit(x[:300], y[:300])
    b = NetworkClassifier(epochs=2, random_state=3).fit(x[:300], y[:300])
    c = NetworkClassifier(epochs=2, random_state=4).fit(x[:300], y[:300])
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    assert not np.array_equal(a.predict_proba(x), c.predict_proba(x))
    d = NetworkClassifier(epochs=2, random_state=np.random.RandomState(3)).fit(x[:300], y[:300])
    e = NetworkClassifier(epochs=2, random_state=np.random.RandomState(3)).fit(x[:300], y[:300])
    np.testing.assert_array_equal(d.predict_proba(x), e.predict_proba(x))


def test_early_stopping_holds_out_validation_data(digits):
    x, y = digits
    model = NetworkClassifier(epochs=40, early_stopping=3, validation_fraction=0.2, random_state=0).fit(x, y)
    assert model.history_.n_evaluation == int(np.ceil(0.2 * len(y)))
    assert len(model.evaluation_accuracy_) == len(model.training_cost_) == model.n_iter_ <= 40
    halving = NetworkClassifier(epochs=3, schedule="halve", patience=1, random_state=0).fit(x[:300], y[:300])
    assert len(halving.evaluation_accuracy_) == halving.n_iter_


def test_partial_fit(digits):
    x, y = digits
    model = NetworkClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes must be given"):
        model.partial_fit(x[:100], y[:100])
    model.partial_fit(x[:500], y[:500], classes=np.arange(10))
    for _ in range(3):
        model.partial_fit(x[:500], y[:500])
    assert model.n_iter_ == 4 and len(model.training_cost_) == 4
    assert model.score(x[500:], y[500:]) > 0.7


def test_partial_fit_refuses_a_new_class(digits):
    x, y = digits
    keep = y < 5
    model = NetworkClassifier(random_state=0).partial_fit(x[keep], y[keep], classes=[0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="not among the classes"):
        model.partial_fit(x[:50], y[:50])
    with pytest.raises(ValueError, match="differ from the classes"):
        model.partial_fit(x[keep], y[keep], classes=np.arange(10))


def test_warm_start_goes_on_training(digits):
    x, y = digits
    model = NetworkClassifier(epochs=2, warm_start=True, random_state=0).fit(x[:300], y[:300])
    first = model.network_
    model.fit(x[:300], y[:300])
    assert model.network_ is first and model.n_iter_ == 4 and len(model.training_cost_) == 4


def test_parameters_are_validated_in_fit(digits):
    x, y = digits
    model = NetworkClassifier(eta=-1.0)                      # stored as given
    assert model.eta == -1.0
    with pytest.raises(ValueError, match="eta"):
        model.fit(x[:50], y[:50])
    with pytest.raises(ValueError, match="activation"):
        NetworkClassifier(activation="softmax").fit(x[:50], y[:50])


def test_sparse_input_is_refused(digits):
    sparse = pytest.importorskip("scipy.sparse")
    x, y = digits
    with pytest.raises(TypeError, match="[Ss]parse"):
        NetworkClassifier().fit(sparse.csr_matrix(x[:50]), y[:50])


def test_import_nndl_does_not_import_sklearn():
    code = "import sys, nndl, nndl.training, nndl.engine.feedforward; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_train_takes_check_pixels():
    from nndl.engine.feedforward import FeedforwardNetwork
    from nndl.training import train

    x = np.tile(np.arange(0, 256, 51.0), (12, 1))[:, :4]    # whole numbers 0..153: "unscaled pixels"
    y = np.arange(12) % 2
    with pytest.raises(InputError, match="0-255 pixel"):
        train(FeedforwardNetwork([4, 2]), (x, y), epochs=1, eta=0.01)
    history = train(FeedforwardNetwork([4, 2]), (x, y), epochs=1, eta=0.01, check_pixels=False,
                    evaluation_data=(x, y))
    assert len(history.evaluation_accuracy) == 1


def test_feature_names_are_kept(digits):
    pd = pytest.importorskip("pandas")
    x, y = digits
    frame = pd.DataFrame(x[:200], columns=[f"pixel{i}" for i in range(64)])
    model = NetworkClassifier(epochs=2, random_state=0).fit(frame, y[:200])
    assert list(model.feature_names_in_) == list(frame.columns)
