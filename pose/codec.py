"""Keypoint heatmap codec: one object that encodes training targets and decodes predictions.

Encoding and decoding live together so their coordinate conventions cannot drift apart
(mmpose's ``codecs/``). Everything here is NumPy (plus ``cv2.getGaussianKernel`` for the
DARK blur kernel); nothing depends on TensorFlow, so the codec can run inside a
``tf.numpy_function`` of the data pipeline and in evaluation alike.

Coordinate conventions
----------------------
Sizes are ``(width, height)`` as OpenCV and the HRNet configs write them. Keypoints are
``(x, y)`` in *input-crop pixels* (the image fed to the network). Heatmaps are
channels-last, ``(H_hm, W_hm, K)`` for one instance and ``(N, H_hm, W_hm, K)`` for a batch.

- ``encoding="standard"`` (HRNet / MSRA, Xiao et al. 2018, Sun et al. CVPR 2019):
  ``feat_stride = input_size / heatmap_size``; a keypoint maps to heatmap pixel
  ``x / feat_stride`` and the Gaussian is centred on the rounded position
  ``mu = int(x / feat_stride + 0.5)``. Decoding maps back with
  ``x_in = x_hm * input_w / heatmap_w`` (HRNet's ``transform_preds`` scale).
- ``encoding="udp"`` (Unbiased Data Processing, Huang et al. CVPR 2020):
  ``feat_stride = (input_size - 1) / (heatmap_size - 1)``, the Gaussian is centred on the
  exact sub-pixel position and decoding inverts the same ratio:
  ``x_in = x_hm * (input_w - 1) / (heatmap_w - 1)``. (mmpose's ``UDPHeatmap.decode``
  multiplies by ``input_size / (heatmap_size - 1)`` because its inverse affine uses the
  ``input_size`` convention; here encode and decode are exact inverses of each other in
  crop pixels, which is what the affine of this project expects.)

The heatmap → crop mapping belongs to the *encoding*; ``decoding`` only chooses how the
sub-pixel maximum is found:

- ``"quarter_offset"``: argmax plus a 0.25 px shift toward the higher neighbour on each axis
  (HRNet's ``get_final_preds`` with ``TEST.POST_PROCESS``).
- ``"dark"``: DARK (Zhang et al. CVPR 2020): Gaussian blur of the heatmap (kernel size from
  sigma, see :func:`dark_blur_kernel_size`), log, one Newton step of the second-order
  Taylor expansion at the argmax (central differences with step 1 for the gradient and 2
  for the Hessian, as DarkPose / mmpose's ``refine_keypoints_dark``).
- ``"udp"``: mmpose's UDP decoding (``refine_keypoints_dark_udp``): the same blur, log of
  the heatmap clipped to ``[1e-3, 50]``, Newton step with step-1 differences on an
  edge-padded map. Only valid with ``encoding="udp"`` (the pairing mmpose uses); the
  constructor rejects ``encoding="standard", decoding="udp"``.

Every other pair is allowed. Note that a standard-encoded target is centred on an
*integer* heatmap pixel, so no decoder can recover the sub-pixel part of a keypoint from
its own target: the round-trip error of the standard encoding is the rounding error
(up to 0.5 heatmap px per axis). Sub-pixel round trips need ``encoding="udp"``.
"""

from __future__ import annotations

import cv2
import numpy as np

from pose.config import DECODINGS, ENCODINGS  # the names live with the config keys

__all__ = [
    "HeatmapCodec",
    "codec_for_model",
    "flip_heatmaps",
    "dark_blur_kernel_size",
    "blur_heatmaps",
    "get_heatmap_maximum",
    "refine_quarter_offset",
    "refine_dark",
    "refine_dark_udp",
]


def _pair(value, name):
    arr = np.asarray(value)
    if arr.shape != (2,) or not np.all(arr > 1):
        raise ValueError(f"{name} must be (width, height) with both > 1, got {value!r}")
    return (int(arr[0]), int(arr[1]))


def dark_blur_kernel_size(sigma: float) -> int:
    """Odd blur kernel size for DARK modulation, from the target Gaussian's sigma.

    Inverts OpenCV's rule ``sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8`` (the one
    ``cv2.GaussianBlur`` applies when given sigma 0, and the empirical rule mmpose
    documents), rounded to the nearest odd size: sigma 2 → 11, 3 → 17, 1.5 → 7, 1 → 5.

    Args:
        sigma: float, standard deviation of the target Gaussian in heatmap pixels.

    Returns:
        int, an odd kernel size of at least 3.
    """
    half = (sigma - 0.8) / 0.3 + 1.0  # (ksize - 1) / 2
    ksize = 2 * int(round(half)) + 1
    return max(3, ksize)


def blur_heatmaps(heatmaps: np.ndarray, kernel_size: int) -> np.ndarray:
    """Gaussian-blur heatmaps with zero padding and keep each map's maximum (DARK).

    Equivalent to DarkPose's / mmpose's ``gaussian_blur``: each map is zero-padded by
    ``(kernel_size - 1) / 2``, blurred with ``cv2.GaussianBlur(ksize, sigma=0)`` and
    rescaled so that its maximum equals the original maximum. Vectorized as a separable
    convolution over all maps at once.

    Args:
        heatmaps: array (N, H, W, K).
        kernel_size: int, odd kernel size.

    Returns:
        float64 array (N, H, W, K).
    """
    if kernel_size % 2 != 1 or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    hm = np.asarray(heatmaps, dtype=np.float64)
    n, h, w, k = hm.shape
    r = (kernel_size - 1) // 2
    kern = cv2.getGaussianKernel(kernel_size, 0, cv2.CV_64F).ravel()  # (ks,)
    padded = np.zeros((n, h + 2 * r, w + 2 * r, k), dtype=np.float64)
    padded[:, r:r + h, r:r + w, :] = hm
    # Separable convolution: along width, then along height (kernel is symmetric).
    along_w = np.zeros((n, h + 2 * r, w, k), dtype=np.float64)
    for i in range(kernel_size):
        along_w += kern[i] * padded[:, :, i:i + w, :]
    out = np.zeros((n, h, w, k), dtype=np.float64)
    for i in range(kernel_size):
        out += kern[i] * along_w[:, i:i + h, :, :]
    orig_max = hm.max(axis=(1, 2), keepdims=True)
    new_max = out.max(axis=(1, 2), keepdims=True)
    safe = np.where(new_max > 0, new_max, 1.0)
    out *= np.where(new_max > 0, orig_max / safe, 1.0)
    return out


def get_heatmap_maximum(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax location and value of every heatmap (HRNet's ``get_max_preds``).

    Args:
        heatmaps: array (N, H, W, K).

    Returns:
        ``(coords, scores)``: coords float64 (N, K, 2) as (x, y) heatmap pixels, scores
        float32 (N, K). Where the maximum is not positive the location is set to (0, 0)
        as HRNet does.
    """
    hm = np.asarray(heatmaps)
    n, h, w, k = hm.shape
    flat = np.moveaxis(hm, 3, 1).reshape(n, k, h * w)  # (N, K, H*W)
    idx = np.argmax(flat, axis=2)  # (N, K)
    scores = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)  # (N, K, 2)
    coords *= (scores > 0)[..., None]
    return coords, scores.astype(np.float32)


def _gather(hm: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """hm (N, H, W, K), integer ys/xs (N, K) → values (N, K)."""
    n, _, _, k = hm.shape
    ni = np.arange(n)[:, None]
    ki = np.arange(k)[None, :]
    return hm[ni, ys, xs, ki]


def refine_quarter_offset(coords: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Shift integer maxima 0.25 px toward the higher neighbour (HRNet POST_PROCESS).

    As HRNet, the shift is applied only where ``1 < px < W - 1`` and ``1 < py < H - 1``
    (both axes), and per axis by ``0.25 * sign(right - left)``.

    Args:
        coords: (N, K, 2) integer-valued heatmap coordinates from the argmax.
        heatmaps: (N, H, W, K) the heatmaps the maxima came from.

    Returns:
        float64 (N, K, 2) refined coordinates.
    """
    hm = np.asarray(heatmaps)  # only 4 values per map are read: no float64 copy of all
    _, h, w, _ = hm.shape
    out = np.array(coords, dtype=np.float64, copy=True)
    px = np.floor(out[..., 0] + 0.5).astype(np.int64)
    py = np.floor(out[..., 1] + 0.5).astype(np.int64)
    ok = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    pxc = np.clip(px, 1, w - 2)
    pyc = np.clip(py, 1, h - 2)
    dx = _gather(hm, pyc, pxc + 1).astype(np.float64) - _gather(hm, pyc, pxc - 1)
    dy = _gather(hm, pyc + 1, pxc).astype(np.float64) - _gather(hm, pyc - 1, pxc)
    shift = 0.25 * np.sign(np.stack([dx, dy], axis=-1))
    out += np.where(ok[..., None], shift, 0.0)
    return out


def refine_dark(coords: np.ndarray, heatmaps: np.ndarray, kernel_size: int) -> np.ndarray:
    """DARK sub-pixel refinement (Zhang et al., CVPR 2020).

    Blur (:func:`blur_heatmaps`), ``log(max(hm, 1e-10))``, then one Newton step
    ``offset = -H^-1 g`` at the integer maximum with gradient
    ``g = (f(x+1) - f(x-1)) / 2`` and Hessian entries ``(f(x+2) - 2 f(x) + f(x-2)) / 4``,
    ``dxy = (f(x+1,y+1) - f(x+1,y-1) - f(x-1,y+1) + f(x-1,y-1)) / 4``. Applied only where
    ``1 < px < W - 2`` and ``1 < py < H - 2`` and the Hessian is not singular (DarkPose's
    ``taylor``).

    Args:
        coords: (N, K, 2) integer-valued heatmap coordinates from the argmax.
        heatmaps: (N, H, W, K).
        kernel_size: odd blur kernel size.

    Returns:
        float64 (N, K, 2) refined coordinates.
    """
    hm = blur_heatmaps(heatmaps, kernel_size)
    np.log(np.maximum(hm, 1e-10), out=hm)
    _, h, w, _ = hm.shape
    out = np.array(coords, dtype=np.float64, copy=True)
    px = out[..., 0].astype(np.int64)
    py = out[..., 1].astype(np.int64)
    ok = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    x = np.clip(px, 2, w - 3)
    y = np.clip(py, 2, h - 3)

    def f(dy, dx):
        return _gather(hm, y + dy, x + dx)

    c = f(0, 0)
    gx = 0.5 * (f(0, 1) - f(0, -1))
    gy = 0.5 * (f(1, 0) - f(-1, 0))
    dxx = 0.25 * (f(0, 2) - 2 * c + f(0, -2))
    dyy = 0.25 * (f(2, 0) - 2 * c + f(-2, 0))
    dxy = 0.25 * (f(1, 1) - f(-1, 1) - f(1, -1) + f(-1, -1))
    det = dxx * dyy - dxy ** 2
    ok &= det != 0
    safe_det = np.where(ok, det, 1.0)
    # offset = -inv([[dxx, dxy], [dxy, dyy]]) @ [gx, gy]
    off_x = -(dyy * gx - dxy * gy) / safe_det
    off_y = -(dxx * gy - dxy * gx) / safe_det
    out += np.where(ok[..., None], np.stack([off_x, off_y], axis=-1), 0.0)
    return out


def refine_dark_udp(coords: np.ndarray, heatmaps: np.ndarray, kernel_size: int) -> np.ndarray:
    """mmpose's UDP refinement (``refine_keypoints_dark_udp``).

    Blur (:func:`blur_heatmaps`), clip to ``[1e-3, 50]``, log, pad by one pixel with
    edge values, then one Newton step with step-1 differences:
    ``dxx = f(x+1) - 2 f(x) + f(x-1)``,
    ``dxy = (f(x+1,y+1) - f(x+1,y) - f(x,y+1) + 2 f(x,y) - f(x-1,y) - f(x,y-1) + f(x-1,y-1)) / 2``,
    and the Hessian regularised by ``eps(float32) * I`` before inversion. Applied to every
    keypoint (the edge padding handles the border).

    Args:
        coords: (N, K, 2) integer-valued heatmap coordinates from the argmax.
        heatmaps: (N, H, W, K).
        kernel_size: odd blur kernel size.

    Returns:
        float64 (N, K, 2) refined coordinates.
    """
    hm = blur_heatmaps(heatmaps, kernel_size)
    np.clip(hm, 1e-3, 50.0, out=hm)
    np.log(hm, out=hm)
    hm = np.pad(hm, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")  # (N, H+2, W+2, K)
    out = np.array(coords, dtype=np.float64, copy=True)
    x = out[..., 0].astype(np.int64) + 1
    y = out[..., 1].astype(np.int64) + 1

    def f(dy, dx):
        return _gather(hm, y + dy, x + dx)

    c = f(0, 0)
    xp, xm, yp, ym = f(0, 1), f(0, -1), f(1, 0), f(-1, 0)
    gx = 0.5 * (xp - xm)
    gy = 0.5 * (yp - ym)
    dxx = xp - 2 * c + xm
    dyy = yp - 2 * c + ym
    dxy = 0.5 * (f(1, 1) - xp - yp + 2 * c - xm - ym + f(-1, -1))
    eps = float(np.finfo(np.float32).eps)
    a, d = dxx + eps, dyy + eps
    det = a * d - dxy ** 2
    ok = det != 0
    safe_det = np.where(ok, det, 1.0)
    off_x = -(d * gx - dxy * gy) / safe_det
    off_y = -(a * gy - dxy * gx) / safe_det
    out += np.where(ok[..., None], np.stack([off_x, off_y], axis=-1), 0.0)
    return out


def flip_heatmaps(heatmaps: np.ndarray, flip_index, shift: bool = False) -> np.ndarray:
    """Bring heatmaps predicted on a horizontally flipped input back to the original frame.

    For flip test: ``(hm(image) + flip_heatmaps(hm(flipped image), flip_index)) / 2``.
    The width axis is reversed and the joint channels are permuted so that channel ``k``
    of the result is channel ``flip_index[k]`` of the input (left ↔ right swap; for a
    pairwise swap the permutation is its own inverse).

    ``shift=True`` then moves the maps one pixel to the right (column ``j`` takes column
    ``j - 1``; column 0 keeps its value), HRNet's ``TEST.SHIFT_HEATMAP``. It compensates
    the half-stride misalignment of the *standard* encoding under a flip (a crop pixel
    ``x`` flips to ``w - 1 - x``, which lands ``1 - 1/stride`` heatmap px away from the
    mirrored heatmap position). Use ``shift=False`` with the UDP encoding, whose
    ``(size - 1)`` ratio makes the flip exact (see :attr:`HeatmapCodec.flip_shift`).

    Args:
        heatmaps: array (N, H, W, K), predictions for the flipped inputs.
        flip_index: sequence of K ints, a permutation of ``range(K)``.
        shift: bool, apply the one-pixel shift. Default False.

    Returns:
        array (N, H, W, K) with the input's dtype.

    Example:
        >>> hm_flip = flip_heatmaps(model(flipped), flip_index=[0, 2, 1], shift=True)
    """
    hm = np.asarray(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (N, H, W, K), got shape {hm.shape}")
    idx = np.asarray(flip_index, dtype=np.int64).ravel()
    k = hm.shape[-1]
    if idx.shape != (k,) or not np.array_equal(np.sort(idx), np.arange(k)):
        raise ValueError(
            f"flip_index must be a permutation of range({k}), got {list(flip_index)!r}")
    out = hm[:, :, ::-1, :][..., idx]
    if shift:
        shifted = out.copy()
        shifted[:, :, 1:, :] = out[:, :, :-1, :]
        out = shifted
    return np.ascontiguousarray(out)


class HeatmapCodec:
    """Encode keypoints into Gaussian heatmaps and decode heatmaps back to keypoints.

    Standard encoding after HRNet (Sun et al., CVPR 2019, ``generate_target``); UDP after
    Huang et al. (CVPR 2020); DARK decoding after Zhang et al. (CVPR 2020). See the module
    docstring for the coordinate conventions.

    Args:
        input_size: (width, height) of the network input crop in pixels.
        heatmap_size: (width, height) of the output heatmaps.
        sigma: float, Gaussian standard deviation in heatmap pixels. Default 2.0.
        encoding: "standard" or "udp". Default "standard".
        decoding: "quarter_offset", "dark" or "udp" ("udp" needs ``encoding="udp"``).
            Default "quarter_offset".
        blur_kernel_size: odd int or None, the DARK/UDP blur kernel; None derives it from
            sigma (:func:`dark_blur_kernel_size`, 11 for sigma 2). Default None.

    Example:
        >>> codec = HeatmapCodec((192, 256), (48, 64), sigma=2.0)
        >>> hm, w = codec.encode(np.array([[96.0, 128.0]]), np.array([2]))
        >>> coords, scores = codec.decode(hm[None])
    """

    def __init__(self, input_size=(192, 256), heatmap_size=(48, 64), sigma: float = 2.0,
                 encoding: str = "standard", decoding: str = "quarter_offset",
                 blur_kernel_size: int | None = None):
        self.input_size = _pair(input_size, "input_size")
        self.heatmap_size = _pair(heatmap_size, "heatmap_size")
        if not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {sigma!r}")
        self.sigma = float(sigma)
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        if decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
        if decoding == "udp" and encoding != "udp":
            raise ValueError(
                "decoding='udp' pairs with encoding='udp' only (mmpose's UDPHeatmap); "
                f"got encoding={encoding!r}. Use decoding='dark' for standard targets.")
        self.encoding = encoding
        self.decoding = decoding
        if blur_kernel_size is None:
            blur_kernel_size = dark_blur_kernel_size(self.sigma)
        if int(blur_kernel_size) != blur_kernel_size or blur_kernel_size % 2 != 1 \
                or blur_kernel_size < 1:
            raise ValueError(
                f"blur_kernel_size must be a positive odd integer, got {blur_kernel_size!r}")
        self.blur_kernel_size = int(blur_kernel_size)
        inp = np.array(self.input_size, dtype=np.float64)
        hms = np.array(self.heatmap_size, dtype=np.float64)
        if encoding == "standard":
            self.feat_stride = inp / hms
        else:
            self.feat_stride = (inp - 1.0) / (hms - 1.0)

    @property
    def flip_shift(self) -> bool:
        """Whether flip test should shift the un-flipped heatmaps (standard encoding)."""
        return self.encoding == "standard"

    def get_config(self) -> dict:
        return {
            "input_size": self.input_size, "heatmap_size": self.heatmap_size,
            "sigma": self.sigma, "encoding": self.encoding, "decoding": self.decoding,
            "blur_kernel_size": self.blur_kernel_size,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"HeatmapCodec({args})"

    # ------------------------------------------------------------------ encode
    def encode(self, keypoints, visible) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian target heatmaps and per-joint weights for one instance.

        The Gaussian ``exp(-((x - cx)^2 + (y - cy)^2) / (2 sigma^2))`` is drawn only on
        the ``(2 * 3sigma + 1)``-pixel square around ``mu = int(kpt / feat_stride + 0.5)``
        (HRNet's truncated patch) and is zero elsewhere. ``c = mu`` for the standard
        encoding, the exact position ``kpt / feat_stride`` for UDP. A joint's weight is 0
        when ``visible <= 0`` or when HRNet's check finds the square outside the map
        (``ul >= size`` or ``br < 0`` on either axis, with ``ul = int(mu - 3 sigma)``,
        ``br = int(mu + 3 sigma + 1)``); its heatmap is then all zeros. Otherwise the
        weight is 1. For integer ``3 sigma`` (sigma 2 and 3 of the HRNet configs) the
        square is exactly HRNet's; for other sigmas it is the symmetric ``|p - mu| <= 3
        sigma`` (HRNet's integer truncation makes its patch asymmetric there).

        Args:
            keypoints: (K, 2) x, y in input-crop pixels.
            visible: (K,) COCO visibility or 0/1; ``> 0`` means labelled.

        Returns:
            ``(heatmaps, target_weight)``: float32 (H_hm, W_hm, K) and float32 (K,).
        """
        kpts = np.asarray(keypoints, dtype=np.float64)
        vis = np.asarray(visible, dtype=np.float64).reshape(-1)
        if kpts.ndim != 2 or kpts.shape[1] < 2:
            raise ValueError(f"keypoints must be (K, 2), got shape {kpts.shape}")
        kpts = kpts[:, :2]
        if vis.shape[0] != kpts.shape[0]:
            raise ValueError(
                f"visible must have K={kpts.shape[0]} entries, got shape {np.shape(visible)}")
        w, h = self.heatmap_size
        radius = 3.0 * self.sigma
        pos = kpts / self.feat_stride  # (K, 2) heatmap coordinates
        finite = np.all(np.isfinite(pos), axis=1)
        pos = np.where(finite[:, None], pos, -1e6)
        mu = np.trunc(pos + 0.5)  # int() of HRNet / mmpose (truncation toward zero)
        ul = np.trunc(mu - radius)
        br = np.trunc(mu + radius + 1.0)
        outside = (ul[:, 0] >= w) | (ul[:, 1] >= h) | (br[:, 0] < 0) | (br[:, 1] < 0)
        weight = ((vis > 0) & finite & ~outside).astype(np.float32)  # (K,)

        centre = mu if self.encoding == "standard" else pos  # (K, 2)
        xs = np.arange(w, dtype=np.float64)[None, :]  # (1, W)
        ys = np.arange(h, dtype=np.float64)[None, :]  # (1, H)
        two_s2 = 2.0 * self.sigma ** 2
        gx = np.exp(-(xs - centre[:, :1]) ** 2 / two_s2)  # (K, W)
        gy = np.exp(-(ys - centre[:, 1:]) ** 2 / two_s2)  # (K, H)
        gx *= np.abs(xs - mu[:, :1]) <= radius  # truncated square patch
        gy *= np.abs(ys - mu[:, 1:]) <= radius
        gx *= weight[:, None]
        heatmaps = gy[:, :, None] * gx[:, None, :]  # (K, H, W)
        heatmaps = np.ascontiguousarray(np.transpose(heatmaps, (1, 2, 0)), dtype=np.float32)
        return heatmaps, weight

    # ------------------------------------------------------------------ decode
    def decode_heatmap_coords(self, heatmaps) -> tuple[np.ndarray, np.ndarray]:
        """Sub-pixel maxima in *heatmap* pixels, before any mapping to the crop.

        Args:
            heatmaps: (N, H_hm, W_hm, K) (a single (H_hm, W_hm, K) map is accepted and
                gets a batch axis of 1).

        Returns:
            ``(coords, scores)``: float32 (N, K, 2) heatmap (x, y), float32 (N, K) maxima.
        """
        hm = np.asarray(heatmaps, dtype=np.float32)
        if hm.ndim == 3:
            hm = hm[None]
        if hm.ndim != 4:
            raise ValueError(f"heatmaps must be (N, H, W, K), got shape {hm.shape}")
        w, h = self.heatmap_size
        if hm.shape[1:3] != (h, w):
            raise ValueError(
                f"heatmaps are {hm.shape[2]}x{hm.shape[1]} (WxH) but the codec expects "
                f"heatmap_size={self.heatmap_size}")
        coords, scores = get_heatmap_maximum(hm)
        if self.decoding == "quarter_offset":
            coords = refine_quarter_offset(coords, hm)
        elif self.decoding == "dark":
            coords = refine_dark(coords, hm, self.blur_kernel_size)
        else:
            coords = refine_dark_udp(coords, hm, self.blur_kernel_size)
        return coords.astype(np.float32), scores

    def heatmap_to_input(self, coords) -> np.ndarray:
        """Map (..., 2) heatmap coordinates to input-crop pixels (the encoding's stride)."""
        return (np.asarray(coords, dtype=np.float64) * self.feat_stride).astype(np.float32)

    def input_to_heatmap(self, coords) -> np.ndarray:
        """Map (..., 2) input-crop pixel coordinates to heatmap coordinates."""
        return (np.asarray(coords, dtype=np.float64) / self.feat_stride).astype(np.float32)

    def decode(self, heatmaps) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints in input-crop pixels from a batch of heatmaps.

        Args:
            heatmaps: (N, H_hm, W_hm, K) channels-last.

        Returns:
            ``(coords, scores)``: float32 (N, K, 2) input-crop (x, y) and float32 (N, K)
            heatmap maxima.
        """
        coords, scores = self.decode_heatmap_coords(heatmaps)
        return self.heatmap_to_input(coords), scores


def codec_for_model(model, sigma: float = 2.0, encoding: str = "standard",
                    decoding: str = "quarter_offset", input_size=None) -> HeatmapCodec:
    """The ``HeatmapCodec`` of a heatmap model, its heatmap size read from the model itself.

    The one place a codec is made for a model: the heatmap size (hence the output stride)
    is the model's real output size, never an assumed 1/4. Works with anything that has
    ``predict_on_batch`` (a Keras model, an exported runtime); nothing here imports
    TensorFlow.

    Args:
        model: a Keras model (``input_shape`` (B, H, W, 3) and ``output_shape``
            (B, H_hm, W_hm, K) are read) or a runtime without them, which is then run once
            on a blank crop of ``input_size`` to read its output size.
        sigma: float, Gaussian sigma in heatmap pixels (``data.sigma``). Default 2.0.
        encoding: "standard" or "udp" (``data.encoding``). Default "standard".
        decoding: "quarter_offset", "dark" or "udp" (``test.decoding``). Default
            "quarter_offset".
        input_size: ``(w, h)`` crop size for a model that does not declare one
            (``model.input_size`` of the config). Default None.

    Returns:
        ``HeatmapCodec``.

    Example:
        >>> codec = codec_for_model(model, sigma=config.data.sigma,
        ...                         encoding=config.data.encoding,
        ...                         decoding=config.test.decoding)
    """
    declared = getattr(model, "input_shape", None)
    if declared is not None and None not in tuple(declared[1:3]):
        input_size = (int(declared[2]), int(declared[1]))
    if input_size is None:
        raise ValueError(f"{type(model).__name__} declares no fixed input size; pass "
                         "input_size=(w, h)")
    width, height = (int(v) for v in input_size)
    output = getattr(model, "output_shape", None) if declared is not None else None
    if output is None or None in tuple(output[1:3]):
        blank = np.zeros((1, height, width, 3), np.float32)
        output = np.shape(model.predict_on_batch(blank))
    return HeatmapCodec(input_size=(width, height), heatmap_size=(int(output[2]), int(output[1])),
                        sigma=sigma, encoding=encoding, decoding=decoding)
