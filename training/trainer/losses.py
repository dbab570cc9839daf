"""The COALA objective (paper eq. 4-13): audio reconstruction, tag reconstruction, contrastive alignment."""
import torch
import torch.nn.functional as F

from training.trainer.config import TrainConfig

EPS = 1e-5


def generalised_kl(x, x_hat):
    """D(X || X^) = sum(X (log X - log X^) + X^ - X) over the bins of a patch, averaged over the batch."""
    d = x * (torch.log(x + EPS) - torch.log(x_hat + EPS)) + x_hat - x
    return d.flatten(1).sum(1).mean()


def tag_bce(t, t_hat):
    # the paper's tag decoder ends in a sigmoid, so this is BCE on probabilities, which CUDA's autocast
    # refuses; computed in float32 outside autocast instead
    with torch.autocast(t_hat.device.type, enabled=False):
        return F.binary_cross_entropy(t_hat.float().clamp(EPS, 1 - EPS), t.float())


def nt_xent(a, b, tau: float, same=None, overlap=None):
    """SimCLR's NT-Xent over the 2N vectors of a batch: a[i] and b[i] are positives, self-pairs excluded.

    same: optional (N, N) bool, True where items i and j must not be each other's negatives
    (identical tag sets); both a[j] and b[j] then leave the denominators of a[i] and b[i].
    overlap: optional (N, N) float in [0, 1] (tag_overlap), the multi-positive variant (SupCon with
    weights, as multi-label contrastive work does): a[j] and b[j] are also positives of a[i] and b[i],
    weighted overlap[i, j], beside the item's own pair at weight 1; the loss of each vector is the
    weighted mean of -log p over its positives. An all-zero overlap gives NT-Xent exactly.
    """
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / tau
    n = a.shape[0]
    sim.fill_diagonal_(float("-inf"))
    if same is not None:
        same = same.clone()
        same.fill_diagonal_(False)  # keeps each positive pair
        sim = sim.masked_fill(same.repeat(2, 2), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(a.device)
    if overlap is None:
        return F.cross_entropy(sim, targets)
    w = overlap.float().clone()
    w.fill_diagonal_(0.0)  # the item's own pair is set to 1 below; a vector is never its own positive
    w = w.repeat(2, 2)
    w[torch.arange(2 * n, device=a.device), targets] = 1.0
    log_p = F.log_softmax(sim, dim=1).masked_fill(w == 0, 0.0)  # 0 * log 0 (self) counts as 0, not nan
    return (-(w * log_p).sum(1) / w.sum(1)).mean()


def tag_overlap(t):
    """(N, N) Jaccard overlap of the rows of a multi-hot tag matrix: shared tags / tags of either (0 if none)."""
    t = t.float()
    shared = t @ t.T
    either = t.sum(1, keepdim=True) + t.sum(1) - shared
    return shared / either.clamp(min=1)  # two untagged rows share nothing: 0 / 1


def identical_rows(t):
    """(N, N) bool: True where rows i and j of the multi-hot tag matrix are equal."""
    return (t.unsqueeze(1) == t.unsqueeze(0)).all(-1)


def coala_losses(net, x, t, cfg: TrainConfig | dict, x_view=None) -> dict:
    """Loss terms of one batch for the net's variant; x (B, 1, bands, frames) in [0, 1], t (B, n_tags) multi-hot.

    x_view: a second view of each patch (training.trainer.augment.audio_view), for the audio-audio term: the
    same NT-Xent as the audio-tag term between the two views' affine outputs (COLA / SimCLR inside
    COALA), weighted by cfg.lambda_audio_audio (0, the default: the paper's loss, x_view unused).
    Returns a dict of scalar tensors with 'total' the weighted sum used for the gradient.
    """
    cfg = TrainConfig.of(cfg)
    variant = net.cfg.variant
    z_a = net.audio_encoder(x)
    if variant == "cnn":
        bce = tag_bce(t, net.classifier(z_a).float())
        return {"tag": bce, "total": bce}
    z_t = net.tag_encoder(t)
    # The paper's NT-Xent counts every other item as a negative. Items with identical tag sets have
    # identical tag embeddings, so as negatives they cannot be told from the positive; mask_same_tags
    # drops them from the denominators (off by default: the paper's loss).
    # multi_positive goes further: with the ontology's broad tags (a dog and a cow share `animal`) clips
    # that share tags pull together, in proportion to how many they share.
    same = identical_rows(t) if cfg.mask_same_tags else None
    overlap = tag_overlap(t) if cfg.multi_positive else None
    phi_a = net.audio_affine(z_a).float()
    contrastive = nt_xent(phi_a, net.tag_affine(z_t).float(), cfg.tau, same, overlap)
    out = {"contrastive": contrastive}
    total = cfg.lambda_contrastive * contrastive
    if cfg.lambda_audio_audio and x_view is not None:
        out["audio_audio"] = nt_xent(phi_a, net.audio_affine(net.audio_encoder(x_view)).float(), cfg.tau)
        total = total + cfg.lambda_audio_audio * out["audio_audio"]
    if variant == "ae-c":
        out["audio"] = generalised_kl(x.float(), net.audio_decoder(z_a).float())
        out["tag"] = tag_bce(t, net.tag_decoder(z_t).float())
        total = total + cfg.lambda_audio * out["audio"] + cfg.lambda_tag * out["tag"]
    out["total"] = total
    return out
