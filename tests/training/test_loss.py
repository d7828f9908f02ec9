import pytest
import torch
import torch.nn.functional as F

from training.loss import MARGIN, NO_IMPOSTOR, sample_impostors, triplet_loss


def loop_loss(audio, text, caption_imp, audio_imp, margin):
    """The baseline's per-sample definition, one pair at a time."""
    terms = []
    for i in range(audio.shape[0]):
        j, k = int(caption_imp[i]), int(audio_imp[i])
        if j == NO_IMPOSTOR:
            continue
        pos = float(audio[i] @ text[i])
        terms.append(max(0.0, margin + float(audio[i] @ text[j]) - pos)
                     + max(0.0, margin + float(audio[k] @ text[i]) - pos))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_loss_equals_the_per_sample_loop(seed):
    g = torch.Generator().manual_seed(seed)
    clip_ids = torch.randint(0, 12, (32,), generator=g)  # repeated clips, as Clotho's 5 captions give
    audio = F.normalize(torch.randn(32, 16, generator=g), dim=-1)
    text = F.normalize(torch.randn(32, 16, generator=g), dim=-1)
    j, k = sample_impostors(clip_ids, g)
    got = triplet_loss(audio, text, caption_imp=j, audio_imp=k)
    assert got.item() == pytest.approx(loop_loss(audio, text, j, k, MARGIN), abs=1e-6)
    assert got.item() > 0


def test_impostors_are_of_another_clip_and_differ():
    g = torch.Generator().manual_seed(3)
    for _ in range(50):
        clip_ids = torch.randint(0, 6, (20,), generator=g)
        j, k = sample_impostors(clip_ids, g)
        for i in range(20):
            if (clip_ids != clip_ids[i]).sum() == 0:
                assert j[i] == k[i] == NO_IMPOSTOR
                continue
            assert clip_ids[j[i]] != clip_ids[i] and clip_ids[k[i]] != clip_ids[i]
            if (clip_ids != clip_ids[i]).sum() >= 2:
                assert j[i] != k[i]


def test_impostors_cover_every_other_row():
    g = torch.Generator().manual_seed(4)
    clip_ids = torch.tensor([0, 0, 1, 2, 3])
    seen_j, seen_k = set(), set()
    for _ in range(200):
        j, k = sample_impostors(clip_ids, g)
        seen_j.add(int(j[0]))
        seen_k.add(int(k[0]))
    assert seen_j == seen_k == {2, 3, 4}  # never row 1: the same clip as row 0


def test_single_other_row_and_lonely_batches():
    j, k = sample_impostors(torch.tensor([5, 5, 7]))
    assert j.tolist() == [2, 2, 0] or j.tolist() == [2, 2, 1]
    assert k[0] == k[1] == 2  # only one row of another clip: j == k is allowed
    j, k = sample_impostors(torch.tensor([4, 4]))
    assert j.tolist() == k.tolist() == [NO_IMPOSTOR, NO_IMPOSTOR]
    a = F.normalize(torch.randn(2, 8), dim=-1).requires_grad_()
    loss = triplet_loss(a, a.detach(), caption_imp=j, audio_imp=k)
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph


def test_loss_is_zero_when_positives_beat_impostors_by_the_margin():
    eye = torch.eye(4)
    j, k = torch.tensor([1, 2, 3, 0]), torch.tensor([2, 3, 0, 1])
    loss = triplet_loss(eye, eye, caption_imp=j, audio_imp=k)
    assert loss.item() == 0.0  # s_pos = 1, s_imp = 0, margin 0.4 < 1
    loss = triplet_loss(eye, eye, caption_imp=j, audio_imp=k, margin=1.5)
    assert loss.item() == pytest.approx(2 * 0.5)
