"""Confirmed photos asked again for the calibration (matching/replay.py): leave-one-out against today's catalog, a
positive and a negative from each, counted as one real query; replay_feedback off (the default) keeps the logged
scores (fake model: fast)."""

from __future__ import annotations

from pathlib import Path

from prodmatch.application.feedback import record_feedback
from prodmatch.application.querying import DirectQueryLog, Matcher, MatchQuery
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.matching.calibration import feedback_samples
from prodmatch.matching.verification import bonus
from tests.fakes import FakeEmbedders
from tests.matching.test_verification import PRODUCTS, hard_photo


def test_a_confirmed_photo_is_asked_again_without_itself(
    fake_myntra: Settings, fake_embedders: FakeEmbedders, myntra: Path
) -> None:
    fake_myntra.matching.replay_feedback = True  # off by default (it did not pay on grocery-dev)
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        matcher = Matcher(catalog, DirectQueryLog(catalog.store), 2000)
        for pid in PRODUCTS:  # a hard photo whose product the fake model ranks among the top 50
            photo = hard_photo(myntra, pid, 4)
            answer = matcher.match(MatchQuery(image=photo, top_k=50))
            then = {m.id: m.score for m in answer.result.matches}
            if pid in then:
                break
        assert record_feedback(catalog, answer.query_id, pid, True).learned_photo
        now = matcher.match(MatchQuery(image=photo, top_k=10)).result.matches[0]
        assert now.id == pid and now.score > then[pid] + 0.3  # the learned copy of the photo itself
        groups = catalog.facts.duplicate_groups()

        replayed = feedback_samples(catalog.matcher, groups, catalog.embedder())["image"]
        assert replayed.queries == 1 and len(replayed.positives) == 1 and len(replayed.negatives) == 1
        # leave-one-out: the product scores as it did before it learned the photo (its studio photo), not 1
        score, _margin, inliers = replayed.positives[0]
        assert score < now.score - 0.1
        # as it scored before learning, up to the inlier bonus (then, verification may have stopped early before it)
        # and the decoding (the kept file is decoded at 512 px, the query was decoded from its bytes as served)
        assert min(abs(score - then[pid]), abs(score - bonus(int(inliers)) - then[pid])) < 0.02
        best_other = max(score for other, score in then.items() if other not in groups.get(pid, {pid}))
        assert replayed.negatives[0][0] >= best_other - 0.02  # the best other product, at least as then

        catalog.matcher.settings.replay_feedback = False
        kept = feedback_samples(catalog.matcher, groups, catalog.embedder())["image"]
        assert kept.queries == 1 and len(kept.positives) + len(kept.negatives) == 1
        assert [*kept.positives, *kept.negatives][0][0] == answer.result.matches[0].score  # the score logged then
