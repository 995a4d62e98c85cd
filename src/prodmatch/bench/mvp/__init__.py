"""A seed-style MVP product-matching service (the baseline prodmatch's speed is measured against).

`service.py` is the MVP itself: FastAPI + uvicorn (one worker), a PyTorch fp32 CLIP ViT-B/32 with random weights,
PIL preprocessing, and a NumPy cosine over the whole catalog matrix, the way a typical take-home writes it.
`load.py` is the load generator `python -m prodmatch.bench.vs_mvp` drives both services with.
"""
