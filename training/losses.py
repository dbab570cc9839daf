"""The COALA objective (paper eq. 4-13): audio reconstruction, tag reconstruction, contrastive alignment."""
import torch
import torch.nn.functional as F

EPS = 1e-5


def generalised_kl(x, x_hat):
    """D(X || X^) = sum(X (log X - log X^) + X^ - X) over the bins of a patch, averaged over the batch."""
    d = x * (torch.log(x + EPS) - torch.log(x_hat + EPS)) + x_hat - x
    return d.flatten(1).sum(1).mean()


def tag_bce(t, t_hat):
    return F.binary_cross_entropy(t_hat.clamp(EPS, 1 - EPS), t)


def nt_xent(a, b, tau: float):
    """SimCLR's NT-Xent over the 2N vectors of a batch: a[i] and b[i] are positives, self-pairs excluded."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / tau
    n = a.shape[0]
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(a.device)
    return F.cross_entropy(sim, targets)


def coala_losses(net, x, t, cfg: dict) -> dict:
    """Loss terms of one batch for the net's variant; x (B, 1, bands, frames) in [0, 1], t (B, n_tags) multi-hot.

    Returns a dict of scalar tensors with 'total' the weighted sum used for the gradient.
    """
    variant = net.cfg.variant
    z_a = net.audio_encoder(x)
    if variant == "cnn":
        bce = tag_bce(t, net.classifier(z_a).float())
        return {"tag": bce, "total": bce}
    z_t = net.tag_encoder(t)
    contrastive = nt_xent(net.audio_affine(z_a).float(), net.tag_affine(z_t).float(), cfg["tau"])
    out = {"contrastive": contrastive}
    total = cfg["lambda_contrastive"] * contrastive
    if variant == "ae-c":
        out["audio"] = generalised_kl(x.float(), net.audio_decoder(z_a).float())
        out["tag"] = tag_bce(t, net.tag_decoder(z_t).float())
        total = total + cfg["lambda_audio"] * out["audio"] + cfg["lambda_tag"] * out["tag"]
    out["total"] = total
    return out
