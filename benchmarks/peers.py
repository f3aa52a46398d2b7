"""Side-by-side benchmark against the libraries people use: speed and quality at equal budget.

For each pair (this project's implementation, a peer's) the two run on the same inputs, alternately,
``reps`` times; the table reports the median of the per-repetition time ratios project / peer (below
1 means the project is faster) and, for trained flows, the test negative log-likelihood of each at
the same budget (data, architecture size, batches, optimiser and steps).

    python -m benchmarks.peers [--device cuda] [--reps 7] [--flow-steps 3000] [--seeds 3] [--out PATH]
                               [--only all|speed|flows|flow-speed]

Prints a table and writes a JSON file (default ``benchmarks/results.json``) with the machine it ran
on; the book's benchmark appendix shows that file.  Nothing here is a test: timings depend on the
machine and its load, which is why ratios of alternating runs are reported, not seconds alone.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gencode.datasets import two_moons
from gencode.device import default_device
from gencode.diffusion import NoiseSchedule, ancestral_sample
from gencode.distributions import eight_gaussians
from gencode.flow_matching import FlowPath, cfm_loss, ot_coupling
from gencode.flows import maf_flow, realnvp_flow
from gencode.metrics import frechet_distance
from gencode.ode import odeint
from gencode.probability_flow import ddim_sample, ddim_timesteps
from gencode.sde import VPSDE, euler_maruyama

OUT = Path(__file__).with_name("results.json")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(ours: Callable[[], object], peer: Callable[[], object], device: torch.device,
              reps: int) -> dict:
    """Median seconds of each and the median of the per-repetition ratios, alternating the order."""
    ours(), peer()  # warm-up (allocations, lazy imports, kernels)
    t_ours, t_peer, ratios = [], [], []
    for r in range(reps):
        pair = [("ours", ours), ("peer", peer)] if r % 2 == 0 else [("peer", peer), ("ours", ours)]
        got = {}
        for name, fn in pair:
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            got[name] = time.perf_counter() - start
        t_ours.append(got["ours"])
        t_peer.append(got["peer"])
        ratios.append(got["ours"] / got["peer"])
    return {"ours_s": statistics.median(t_ours), "peer_s": statistics.median(t_peer),
            "ratio": statistics.median(ratios)}


class _TimeMLP(nn.Module):
    """A small MLP of (x, t) used identically by both sides of a comparison."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype).expand(x.shape[0]).unsqueeze(-1)
        return self.net(torch.cat([x, t], dim=-1))


class _Rows(list):
    """Rows that print themselves as they come (a benchmark can take minutes on a loaded machine)."""

    def append(self, row: dict) -> None:
        super().append(row)
        print(f"  {row['pair']}: ratio {row['ratio']:.2f} ({row['ours_s']:.4f} s vs {row['peer_s']:.4f} s)",
              flush=True)


def speed_rows(device: torch.device, reps: int, frechet_dim: int = 2048) -> list[dict]:
    from diffusers import DDIMScheduler, DDPMScheduler
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler
    import numpy as np
    import ot
    import torchdiffeq
    import torchsde
    import zuko

    rows = _Rows()
    g = torch.Generator(device=device).manual_seed(0)
    net = _TimeMLP(2).to(device)
    eps_model = lambda x, t: net(x, float(t) / 1000)
    x_T = torch.randn(1024, 2, generator=g, device=device)

    # DDPM, 1000 ancestral steps
    sched = NoiseSchedule.linear(1000).to(device)
    ddpm = DDPMScheduler(num_train_timesteps=1000, clip_sample=False, variance_type="fixed_large")
    ddpm.set_timesteps(1000)

    @torch.no_grad()
    def ddpm_ours():
        return ancestral_sample(sched, eps_model, x_T, variance="beta")

    @torch.no_grad()
    def ddpm_peer():
        x = x_T
        for t in ddpm.timesteps.tolist():
            x = ddpm.step(eps_model(x, t + 1), t, x).prev_sample
        return x

    rows.append({"pair": "DDPM sampling, 1000 steps, B = 1024", "peer": "diffusers DDPMScheduler",
                 **time_pair(ddpm_ours, ddpm_peer, device, reps)})

    # DDIM, 50 steps
    ddim = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=True,
                         timestep_spacing="trailing")
    ddim.set_timesteps(50)

    @torch.no_grad()
    def ddim_ours():
        return ddim_sample(eps_model, sched, x_T, 50)

    @torch.no_grad()
    def ddim_peer():
        x = x_T
        for t in ddim.timesteps.tolist():
            x = ddim.step(eps_model(x, t + 1), t, x).prev_sample
        return x

    rows.append({"pair": "DDIM sampling, 50 steps, B = 1024", "peer": "diffusers DDIMScheduler",
                 **time_pair(ddim_ours, ddim_peer, device, reps)})

    # one conditional flow matching training step
    vnet = _TimeMLP(2, 256).to(device)
    opt = torch.optim.Adam(vnet.parameters(), lr=1e-3)
    data = eight_gaussians(device=device).sample(256, g)
    path = AffineProbPath(scheduler=CondOTScheduler())

    def cfm_ours():
        loss = cfm_loss(vnet, data, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def cfm_peer():
        x0 = torch.randn(data.shape, generator=g, device=device)
        t = torch.rand(data.shape[0], generator=g, device=device)
        ps = path.sample(x_0=x0, x_1=data, t=t)
        loss = (vnet(ps.x_t, t) - ps.dx_t).square().sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rows.append({"pair": "CFM training step, B = 256, MLP 256", "peer": "flow_matching AffineProbPath",
                 **time_pair(cfm_ours, cfm_peer, device, reps)})

    # exact OT between two point clouds (POT's network simplex is what torchcfm's OT sampler calls)
    a, b = torch.randn(256, 2, generator=g, device=device), torch.randn(256, 2, generator=g, device=device)
    uniform = np.full(256, 1 / 256)
    rows.append({"pair": "exact OT plan, 256 points", "peer": "POT ot.emd (torchcfm's OT plan)",
                 **time_pair(lambda: ot_coupling(a, b),
                             lambda: ot.emd(uniform, uniform, torch.cdist(a, b).square().cpu().double().numpy()),
                             device, reps)})

    # Euler-Maruyama, 200 steps of the VP SDE
    sde = VPSDE()
    times = [k / 200 for k in range(201)]
    x0 = torch.randn(1024, 2, generator=g, device=device)

    class Forward(nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def f(self, t, y):
            return sde.drift(y, float(t))

        def g(self, t, y):
            return sde.diffusion(float(t)).to(y).expand_as(y)

    ts = torch.tensor(times, device=device)
    rows.append({"pair": "Euler-Maruyama, VP SDE, 200 steps, B = 1024", "peer": "torchsde sdeint (euler)",
                 **time_pair(lambda: euler_maruyama(sde.drift, sde.diffusion, x0, times, generator=g),
                             lambda: torchsde.sdeint(Forward(), x0, ts, method="euler", dt=1 / 200),
                             device, reps)})

    # Heun, 100 steps of an MLP field
    f = lambda t, x: vnet(x, t)
    grid = torch.linspace(0.0, 1.0, 101, device=device)
    with torch.no_grad():
        rows.append({"pair": "Heun ODE, 100 steps, B = 1024", "peer": "torchdiffeq heun2",
                     **time_pair(lambda: odeint(f, x0, 0.0, 1.0, method="heun", steps=100),
                                 lambda: torchdiffeq.odeint(f, x0, grid, method="heun2"), device, reps)})

    # Frechet distance at d = 2048 (the formula pytorch-fid evaluates with scipy's sqrtm)
    from scipy import linalg

    d = frechet_dim
    A = torch.randn(d, d, generator=g, device=device, dtype=torch.float64) / math.sqrt(d)
    B = torch.randn(d, d, generator=g, device=device, dtype=torch.float64) / math.sqrt(d)
    S1, S2 = A @ A.T + 0.1 * torch.eye(d, device=device, dtype=torch.float64), B @ B.T
    m1, m2 = torch.zeros(d, device=device, dtype=torch.float64), torch.ones(d, device=device, dtype=torch.float64)

    def frechet_scipy():
        s1, s2 = S1.cpu().numpy(), S2.cpu().numpy()
        covmean = linalg.sqrtm(s1 @ s2).real
        return float(np.sum((m1 - m2).cpu().numpy() ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))

    ours_val, peer_val = float(frechet_distance(m1, S1, m2, S2)), frechet_scipy()
    rows.append({"pair": f"Frechet distance, d = {d}", "peer": "scipy sqrtm (pytorch-fid's formula)",
                 "agreement_rel": abs(ours_val - peer_val) / abs(peer_val),
                 **time_pair(lambda: frechet_distance(m1, S1, m2, S2, validate=False), frechet_scipy, device,
                             max(3, reps // 2))})

    rows.extend(flow_speed_rows(device, reps, g))
    return rows


def flow_speed_rows(device: torch.device, reps: int, g: torch.Generator | None = None) -> list[dict]:
    """MAF and RealNVP against zuko's: ``log_prob`` and its backward pass, the training step's cost."""
    import zuko

    rows = _Rows()
    g = g if g is not None else torch.Generator(device=device).manual_seed(0)
    # flows: log_prob + backward
    for dim, batch in ((2, 512), (16, 512)):
        x = torch.randn(batch, dim, generator=g, device=device)
        ours, peer = maf_flow(dim, 4, (64, 64)).to(device), zuko.flows.MAF(dim, transforms=4, hidden_features=(64, 64)).to(device)
        rows.append({"pair": f"MAF log_prob + backward, D = {dim}", "peer": "zuko MAF",
                     **time_pair(lambda: ours.log_prob(x).mean().backward(),
                                 lambda: peer().log_prob(x).mean().backward(), device, reps)})
    x = torch.randn(512, 2, generator=g, device=device)
    ours, peer = realnvp_flow(2, 6, 64, 2).to(device), zuko.flows.RealNVP(2, transforms=6, hidden_features=(64, 64)).to(device)
    rows.append({"pair": "RealNVP log_prob + backward, D = 2", "peer": "zuko RealNVP",
                 **time_pair(lambda: ours.log_prob(x).mean().backward(),
                             lambda: peer().log_prob(x).mean().backward(), device, reps)})
    return rows


def flow_quality_rows(device: torch.device, steps: int, seeds: int) -> list[dict]:
    """Test NLL (nats) of the project's flows and zuko's at equal budget: same data, sizes, batches."""
    import zuko

    datasets = {
        "two moons": lambda n, g: two_moons(n, generator=g, device=device),
        "eight Gaussians": lambda n, g: eight_gaussians(std=0.3, device=device).sample(n, g),
    }
    configs = [
        ("MAF", "two moons", lambda: maf_flow(2, 4, (64, 64)),
         lambda: zuko.flows.MAF(2, transforms=4, hidden_features=(64, 64))),
        ("RealNVP", "two moons", lambda: realnvp_flow(2, 6, 64, 2),
         lambda: zuko.flows.RealNVP(2, transforms=6, hidden_features=(64, 64))),
        ("RealNVP", "eight Gaussians", lambda: realnvp_flow(2, 6, 64, 2),
         lambda: zuko.flows.RealNVP(2, transforms=6, hidden_features=(64, 64))),
    ]
    rows = []
    for model, data_name, make_ours, make_peer in configs:
        nll = {"ours": [], "peer": []}
        for seed in range(seeds):
            for side, make in (("ours", make_ours), ("peer", make_peer)):
                torch.manual_seed(seed)
                flow = make().to(device)
                log_prob = (lambda f: (lambda x: f.log_prob(x)))(flow) if side == "ours" else \
                    (lambda f: (lambda x: f().log_prob(x)))(flow)
                opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
                g = torch.Generator(device=device).manual_seed(1000 + seed)  # same batches for both
                for _ in range(steps):
                    loss = -log_prob(datasets[data_name](256, g)).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                test = datasets[data_name](20000, torch.Generator(device=device).manual_seed(99))
                with torch.no_grad():
                    nll[side].append(float(-log_prob(test).mean()))
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        rows.append({"model": model, "data": data_name, "steps": steps, "seeds": seeds,
                     "ours_nll": statistics.mean(nll["ours"]), "peer_nll": statistics.mean(nll["peer"]),
                     "ours_sd": sd(nll["ours"]), "peer_sd": sd(nll["peer"]),
                     "ours_per_seed": nll["ours"], "peer_per_seed": nll["peer"], "peer": f"zuko {model}"})
        r = rows[-1]
        print(f"  {model} on {data_name}: ours {r['ours_nll']:.3f} +- {r['ours_sd']:.3f}, "
              f"zuko {r['peer_nll']:.3f} +- {r['peer_sd']:.3f}", flush=True)
    return rows


def machine(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "device": str(device),
            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: gencode.device.default_device())")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--flow-steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3)
    # pytorch-fid works at d = 2048; scipy's sqrtm there takes minutes per call on 2 loaded cores
    parser.add_argument("--frechet-dim", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on the CPU")
    parser.add_argument("--out", type=Path, default=OUT)
    # "flows" or "speed": run only that part and keep the other part's rows from the existing --out file
    parser.add_argument("--only", choices=("all", "speed", "flows", "flow-speed"), default="all",
                        help="run only the speed rows, the flow-quality rows, or the flows' speed rows, "
                             "keeping the other rows of --out")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    old = json.loads(args.out.read_text()) if args.only != "all" and args.out.exists() else {}
    if args.only == "flows":
        speed = old.get("speed", [])
    elif args.only == "flow-speed":  # replace the flow rows by pair name, keep the others
        fresh = {r["pair"]: r for r in flow_speed_rows(device, args.reps)}
        speed = [fresh.pop(r["pair"], r) for r in old.get("speed", [])] + list(fresh.values())
    else:
        speed = speed_rows(device, args.reps, args.frechet_dim)
    print(f"{'pair':48} {'peer':36} {'ours s':>9} {'peer s':>9} {'ratio':>6}")
    for r in speed:
        print(f"{r['pair']:48} {r['peer']:36} {r['ours_s']:9.4f} {r['peer_s']:9.4f} {r['ratio']:6.2f}")
    if args.only in ("speed", "flow-speed"):
        quality = old.get("quality", [])
    else:
        quality = flow_quality_rows(device, args.flow_steps, args.seeds) if args.flow_steps > 0 else []
    for r in quality:
        print(f"{r['model']} on {r['data']}: test NLL ours {r['ours_nll']:.3f}, {r['peer']} {r['peer_nll']:.3f} "
              f"({r['steps']} steps x {r['seeds']} seeds)")
    if old and old.get("machine") != machine(device):
        print("note: the kept rows were measured on", old.get("machine"))
    result = {"machine": machine(device), "reps": args.reps if args.only in ("all", "speed") else old.get("reps", args.reps),
              "speed": speed, "quality": quality, "date": time.strftime("%Y-%m-%d")}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
