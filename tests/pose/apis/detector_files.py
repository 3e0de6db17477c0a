"""Tiny detector files made inside the tests (no downloaded weights): ONNX graphs built with
``onnx.helper`` whose outputs are planted arrays, and TFLite files converted from a
``tf.function`` with planted outputs. Each output is tied to the input (``+ 0 * mean``) so
the runtime really runs the graph on what the detector feeds it."""

import numpy as np

_ONNX_TYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int64): 7}


def onnx_detector(path, outputs, input_shape=(1, 3, 128, 128), input_name="images",
                  input_dtype=np.float32, opset=17, gains=None):
    """An ``.onnx`` whose outputs (``{name: array}``, in order) are the planted arrays.

    ``input_shape`` may hold None (a dynamic dimension). ``gains`` (``{name: array}`` of
    an output's shape) makes that output depend on what the detector is fed: it becomes
    ``planted + mean(input) * gain``, so that an option changing the input (mean, std,
    colour order, size, placement) changes the boxes or scores."""
    import onnx
    from onnx import helper, numpy_helper

    in_type = _ONNX_TYPES[np.dtype(input_dtype)]
    nodes = [helper.make_node("Cast", [input_name], ["x_float"], to=1),
             helper.make_node("ReduceMean", ["x_float"], ["mean"], keepdims=0),
             helper.make_node("Constant", [], ["zero"],
                              value=numpy_helper.from_array(np.array(0, np.float32), "zero")),
             helper.make_node("Mul", ["mean", "zero"], ["tie"])]
    graph_outputs = []
    for i, (name, value) in enumerate(outputs.items()):
        value = np.asarray(value)
        elem = _ONNX_TYPES[value.dtype]
        nodes.append(helper.make_node("Constant", [], [f"c{i}"],
                                      value=numpy_helper.from_array(value, f"c{i}")))
        tie = "tie"
        if gains and name in gains:
            nodes.append(helper.make_node(
                "Constant", [], [f"g{i}"], value=numpy_helper.from_array(
                    np.asarray(gains[name], np.float32), f"g{i}")))
            nodes.append(helper.make_node("Mul", ["mean", f"g{i}"], [f"gained{i}"]))
            tie = f"gained{i}"
        if elem != 1:
            nodes.append(helper.make_node("Cast", ["tie"], [f"tie{i}"], to=elem))
            tie = f"tie{i}"
        nodes.append(helper.make_node("Add", [f"c{i}", tie], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, elem, list(value.shape)))
    dims = [d if d is not None else f"d{i}" for i, d in enumerate(input_shape)]
    graph = helper.make_graph(nodes, "planted_detector",
                              [helper.make_tensor_value_info(input_name, in_type, dims)],
                              graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tflite_detector(path, outputs, input_shape=(1, 128, 128, 3), input_dtype=np.float32):
    """A ``.tflite`` converted from a ``tf.function`` returning ``{name: planted array}``."""
    import tensorflow as tf

    consts = {k: tf.constant(np.asarray(v, np.float32)) for k, v in outputs.items()}

    @tf.function(input_signature=[tf.TensorSpec(input_shape, tf.as_dtype(input_dtype))])
    def detector(x):
        tie = tf.reduce_mean(tf.cast(x, tf.float32)) * 0.0
        return {k: v + tie for k, v in consts.items()}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [detector.get_concrete_function()], detector)
    with open(path, "wb") as f:
        f.write(converter.convert())
    return path


def yolo_rows(boxes_xyxy, classes, scores, num_classes, rows, objectness=None,
              normalise=None):
    """(rows, 4 + [1] + C) YOLO predictions: the planted boxes first (cx, cy, w, h in input
    pixels, or divided by ``normalise = (w, h)``), the other rows zero."""
    with_obj = objectness is not None
    out = np.zeros((rows, 4 + int(with_obj) + num_classes), np.float32)
    b = np.asarray(boxes_xyxy, np.float64)
    xywh = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0],
                     b[:, 3] - b[:, 1]], axis=1)
    if normalise is not None:
        xywh = xywh / np.array([*normalise, *normalise], np.float64)
    out[:len(b), :4] = xywh
    first = 4
    if with_obj:
        out[:len(b), 4] = objectness
        first = 5
    out[np.arange(len(b)), first + np.asarray(classes)] = scores
    return out
