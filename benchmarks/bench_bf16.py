"""bf16 autocast against fp32 on this CPU: seconds per training step of MiniLM as a masked LM.

    python benchmarks/bench_bf16.py [--steps 4] [--batch 32] [--length 128]

The same model, batch and optimizer, in one process, alternating fp32 and bf16 rounds after a
warm-up step each (so drift in the machine's speed hits both alike); shows seconds per step and
the speed ratio. bf16 pays off on CPUs with AVX512-BF16 or AMX
(`lscpu | grep -o 'avx512_bf16\\|amx_bf16'`); elsewhere it is emulated and slower.
"""

from __future__ import annotations

import os
import platform
import time

import harness

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForMaskedLM

    from hfadapt import builtin

    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_pretrained(builtin.checkpoint_path("builtin:minilm"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(1000, model.config.vocab_size, (args.batch, args.length))
    labels = torch.where(torch.rand(ids.shape) < 0.15, ids, torch.full_like(ids, -100))

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    seconds = {False: [], True: []}
    for bf16 in (False, True, False, True):
        step(bf16)  # warm-up
        started = time.perf_counter()
        for _ in range(args.steps):
            step(bf16)
        seconds[bf16].append((time.perf_counter() - started) / args.steps)
    rows = {"fp32": {"seconds_per_step": min(seconds[False])}, "bf16": {"seconds_per_step": min(seconds[True])}}
    title = (
        f"MiniLM as a masked LM, batch {args.batch} x {args.length}, best of 2 rounds of {args.steps} steps each, "
        f"in one process; CPU: {platform.processor() or platform.machine()}."
    )
    columns = [harness.Column("seconds_per_step", "s/step", ratio="speed")]
    harness.publish(__file__, [harness.Table(title, rows, "fp32", columns)], args.no_write)


if __name__ == "__main__":
    main()
