"""The audio decoder's sub-pixel convolutions compute what the paper's transposed convolutions compute:
same parameters and state dict, same output and gradients (float64 to rounding, bf16 to its precision)."""
import pytest
import torch
from torch import nn

from coala_embed.model import COALA, ModelConfig, SubPixelConvTranspose2d


def _pair(c_in, c_out, seed=0):
    torch.manual_seed(seed)
    sub = SubPixelConvTranspose2d(c_in, c_out).double()
    ref = nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1).double()
    ref.load_state_dict(sub.state_dict())
    return sub, ref


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("c_in,c_out,h,w", [(128, 128, 3, 3), (16, 1, 12, 12), (3, 5, 4, 7), (2, 3, 1, 1)])
def test_subpixel_equals_conv_transpose_with_gradients(c_in, c_out, h, w, channels_last):
    sub, ref = _pair(c_in, c_out)
    assert sub.state_dict().keys() == ref.state_dict().keys()
    assert sub.weight.shape == (c_in, c_out, 4, 4)
    x = torch.randn(3, c_in, h, w, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        sub, ref = sub.to(memory_format=torch.channels_last), ref.to(memory_format=torch.channels_last)
    x.requires_grad_()
    y_sub, y_ref = sub(x), ref(x)
    assert y_sub.shape == y_ref.shape == (3, c_out, 2 * h, 2 * w)
    if channels_last:
        assert y_sub.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_sub, y_ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y_ref)
    grads_sub = torch.autograd.grad(y_sub, (x, sub.weight, sub.bias), g)
    grads_ref = torch.autograd.grad(y_ref, (x, ref.weight, ref.bias), g)
    for a, b in zip(grads_sub, grads_ref):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_subpixel_under_bf16_autocast_stays_within_bf16_precision():
    sub, ref = _pair(128, 128)
    sub, ref = sub.float().to(memory_format=torch.channels_last), ref.float()
    x = torch.randn(8, 128, 6, 6).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = sub(x)
        exact = ref(x)
    assert y.dtype == torch.bfloat16
    assert float((y.float() - exact).norm() / exact.norm()) < 1e-2


def _decoder_pair():
    torch.manual_seed(0)
    net = COALA(ModelConfig(variant="ae-c", n_tags=12, dropout=0.0)).double().train()
    ref = COALA(ModelConfig(variant="ae-c", n_tags=12, dropout=0.0)).double().train()
    for m in ref.audio_decoder.modules():
        if isinstance(m, SubPixelConvTranspose2d):
            m.__class__ = nn.ConvTranspose2d  # the subclass adds no state: the paper's layer, same weights
    ref.load_state_dict(net.state_dict())
    return net, ref


def test_decoder_keeps_the_papers_state_dict_and_trains_the_same():
    net, ref = _decoder_pair()
    decoder_shapes = {k: tuple(v.shape) for k, v in net.state_dict().items() if k.startswith("audio_decoder.")}
    convs = [k for k in decoder_shapes if k.endswith(".weight") and len(decoder_shapes[k]) == 4]
    assert [decoder_shapes[k] for k in convs] == [(128, 128, 4, 4)] * 4 + [(128, 1, 4, 4)]
    assert convs == [f"audio_decoder.blocks.{4 * i}.weight" for i in range(5)]
    z = torch.rand(4, 1152, dtype=torch.float64)
    out, out_ref = net.audio_decoder(z), ref.audio_decoder(z)  # train mode: BatchNorm on batch statistics
    assert out.shape == (4, 1, 96, 96)
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-10)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    for (name, p), p_ref in zip(net.audio_decoder.named_parameters(), ref.audio_decoder.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-8, atol=1e-10, msg=name)
