"""Keywords from result patterns."""

from __future__ import annotations

from prodmatch.matching.keywords import keywords


def test_dominant_values_that_stand_out_from_the_catalog() -> None:
    results = [
        {"name": "A", "colour": "Blue", "type": "Shirt", "gender": "Boys", "url": "http://x/1.jpg", "price": 9},
        {"name": "B", "colour": "Blue", "type": "Shirt", "gender": "Boys", "url": "http://x/2.jpg", "price": 9},
        {"name": "C", "colour": "Red", "type": "Shirt", "gender": "Boys", "url": "http://x/3.jpg", "price": 9},
        {"name": "D", "colour": "Blue", "type": "Jeans", "gender": "Boys", "url": "http://x/4.jpg", "price": 9},
    ]
    catalog = {("colour", "Blue"): 0.2, ("type", "Shirt"): 0.7, ("gender", "Boys"): 1.0}
    found = [(k.key, k.value, k.share) for k in keywords(results, catalog)]
    # Shirt (75% vs 70% of the catalog) and Boys (everyone) say nothing; URLs, names and numbers never count
    assert found == [("colour", "Blue", 0.75)]


def test_without_a_baseline_every_dominant_value_counts_and_empty_results_give_none() -> None:
    results = [{"colour": "Blue"}, {"colour": "Blue"}, {"colour": "Red"}]
    assert [(k.key, k.value) for k in keywords(results)] == [("colour", "Blue")]
    assert keywords([]) == []
