"""Trainable parameters and multiply-accumulates of a built model.

MACs count every convolution (output pixels × kernel area × input channels / groups ×
output channels) and, for layers that define ``count_macs(height, width)`` (the PSA
layers), what that method reports. BatchNorm, ReLU, additions and upsampling are not
counted, as in the official HRNet complexity table (whose "GFLOPs" are these MACs / 2^30).
"""

import math

import keras


def count_trainable_params(model):
    """Trainable weights' element count (BatchNorm's moving statistics are not trainable)."""
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def count_macs(model):
    """Multiply-accumulates of one forward pass of one image; needs a fixed input size."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, out_h, out_w, out_c = layer.output.shape
            in_c = layer.input.shape[-1]
            if None in (out_h, out_w):
                raise ValueError(f"count_macs needs a fixed input size; layer {layer.name} "
                                 f"has output shape {layer.output.shape}")
            kernel_h, kernel_w = layer.kernel_size
            total += out_h * out_w * kernel_h * kernel_w * (in_c // layer.groups) * out_c
        elif hasattr(layer, "count_macs"):
            _, height, width, _ = layer.input.shape
            total += layer.count_macs(height, width)
    return total


def describe_model(model):
    """One table row about a built ``HRNet``: its settings, parameters and MACs."""
    return {
        "width": model.width,
        "input": "x".join(str(s) for s in reversed(model.input_size)),  # HxW, as configs name it
        "psa": "none" if model.psa_placement == "none"
               else f"{model.psa_placement}/{model.psa_mode}/{model.psa_form}",
        "params": count_trainable_params(model),
        "macs_g": count_macs(model) / 1e9,
    }


def format_table(rows, columns):
    """Rows of dicts as an aligned Markdown table; ``columns`` is [(key, header, fmt)]."""
    cells = [[header for _, header, _ in columns]]
    cells += [[fmt.format(row[key]) for key, _, fmt in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
