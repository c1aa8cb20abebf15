"""Tabular models from scikit-learn's bundled datasets, converted with skl2onnx."""

from __future__ import annotations

IRIS_LABELS = ("setosa", "versicolor", "virginica")


def iris_logistic_regression_onnx(*, seed: int = 0) -> tuple[bytes, float]:
    """Train LogisticRegression on iris (75/25 stratified split) -> (ONNX bytes, test accuracy).

    Graph: input `float_input` float32 [N, 4]; outputs `label` int64 [N] and `probabilities`
    float32 [N, 3] (zipmap off, so probabilities is a plain tensor).
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    clf = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    accuracy = float(clf.score(x_test, y_test))
    onx = convert_sklearn(
        clf,
        initial_types=[("float_input", FloatTensorType([None, 4]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return onx.SerializeToString(), accuracy
