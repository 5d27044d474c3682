"""Multi-scale deformable attention: the PyTorch path against a slow
per-point bilinear reference, the released core on ``msda_core.pt``, and
the module's kernel dispatch."""
import pytest
import torch

from mmwris.models.layers.ms_deform_attn import (
    MSDeformAttn, compiled_kernel, multi_scale_deformable_attention)


def bilinear_zero_pad(value, x, y):
    """``value [D, H, W]`` at pixel coordinates (x, y); outside pixels 0."""
    dim, height, width = value.shape
    x0, y0 = int(torch.floor(x)), int(torch.floor(y))
    out = torch.zeros(dim, dtype=value.dtype)
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            if 0 <= yy < height and 0 <= xx < width:
                weight = (1 - abs(float(x) - xx)) * (1 - abs(float(y) - yy))
                out += weight * value[:, yy, xx]
    return out


def slow_reference(value, shapes, locations, weights):
    batch, _, heads, dim = value.shape
    _, queries, _, levels, points, _ = locations.shape
    starts = [0]
    for h, w in shapes.tolist():
        starts.append(starts[-1] + h * w)
    out = torch.zeros(batch, queries, heads * dim, dtype=value.dtype)
    for n in range(batch):
        for q in range(queries):
            for m in range(heads):
                acc = torch.zeros(dim, dtype=value.dtype)
                for lvl, (h, w) in enumerate(shapes.tolist()):
                    v = value[n, starts[lvl]:starts[lvl + 1], m].T.reshape(
                        dim, h, w)
                    for p in range(points):
                        x, y = locations[n, q, m, lvl, p]
                        acc += weights[n, q, m, lvl, p] * bilinear_zero_pad(
                            v, x * w - 0.5, y * h - 0.5)
                out[n, q, m * dim:(m + 1) * dim] = acc
    return out


@pytest.mark.parametrize('seed', [0, 1])
def test_pytorch_path_matches_slow_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    shapes = torch.tensor([[5, 4], [3, 2], [1, 3]])
    total = int((shapes[:, 0] * shapes[:, 1]).sum())
    value = torch.randn(2, total, 2, 3, generator=gen, dtype=torch.float64)
    locations = torch.rand(2, 4, 2, 3, 2, 2, generator=gen,
                           dtype=torch.float64) * 1.6 - 0.3
    weights = torch.rand(2, 4, 2, 3, 2, generator=gen, dtype=torch.float64)
    ours = multi_scale_deformable_attention(value, shapes, locations, weights)
    ref = slow_reference(value, shapes, locations, weights)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)


def test_module_shapes_and_gradients():
    torch.manual_seed(0)
    attn = MSDeformAttn(embed_dims=16, num_levels=2, num_heads=4,
                        num_points=3)
    shapes = torch.tensor([[4, 4], [2, 2]])
    start = torch.tensor([0, 16])
    value = torch.randn(2, 20, 16, requires_grad=True)
    ref = torch.rand(2, 20, 2, 2)
    out = attn(value, ref, value, shapes, start)
    assert out.shape == (2, 20, 16)
    out.sum().backward()
    assert value.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        attn(value, ref, value[:, :10], shapes, start)


def test_kernel_is_guarded():
    """No compiled mmcv op here: the lookup answers None, the CPU module
    works anyway."""
    kernel = compiled_kernel()
    assert kernel is None or hasattr(kernel, 'apply')


def test_released_core_fixture():
    """``msda_core.pt``: the released ``ms_deform_attn_core_pytorch`` on
    locations partly outside the maps (README: atol 1e-6, rtol 1e-5)."""
    from official_fixtures import fixtures_root, load
    if not (fixtures_root() / 'magnet').is_dir():
        pytest.skip('no MagNet official fixtures')
    data = load('msda_core.pt', 'magnet')
    shapes = torch.as_tensor(data['spatial_shapes'], dtype=torch.long)
    out = multi_scale_deformable_attention(data['value'], shapes,
                                           data['sampling_locations'],
                                           data['attention_weights'])
    torch.testing.assert_close(out, data['output'], atol=1e-6, rtol=1e-5)
