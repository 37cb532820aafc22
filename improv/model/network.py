"""The LSTM, its config, TorchScript export and loading.

Training uses `nn.LSTM` over whole sequences; the live instrument uses
`StepModel`, a single-step cell that shares the trained weights, because a
scripted `nn.LSTM` call of length 1 costs several times more per event.

An event is predicted as a chain: step first (when does the next note come),
then pitch given the step, duration given both, velocity given all three.
Knowing the step tells the pitch head whether it is adding a chord tone above
the last note or starting a new onset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from improv.music.encoding import N_PITCH, START_PITCH, Bins
from improv.errors import ModelFileError

FORMAT = "improv-lstm"
FORMAT_VERSION = 1
HEADS = ("step", "pitch", "duration", "velocity")


@dataclass
class ModelConfig:
    hidden: int = 320
    layers: int = 2
    embed: int = 128
    head_hidden: int = 256
    dropout: float = 0.3
    bins: dict = field(default_factory=lambda: Bins().to_dict())
    # Transposition-invariant pitch: the interval from the previous pitch as an input, and a
    # second pitch output over intervals added to the absolute one (as a Markov mix of absolute
    # and interval contexts does). Off for models trained before it existed.
    relative_pitch: bool = False
    # How much of the rhythm heads' (step, duration, velocity) gradient reaches the LSTM. Their
    # losses fall fast and then overfit, and at full strength they pull the shared trunk away
    # from pitch (held-out pitch learned about twice as slowly per update); 1.0 for older models.
    rhythm_grad: float = 1.0
    # A small LSTM of its own (one layer of this many units; 0: none) for the rhythm heads, added
    # to the main LSTM's output there: with rhythm_grad 0 the main LSTM learns pitch alone.
    rhythm_hidden: int = 0
    # The main LSTM sees only pitch and the times in seconds (as the study model did), not the
    # interval, bins and velocity: less to memorise. The rhythm LSTM still sees everything.
    lean_inputs: bool = False

    @property
    def binning(self) -> Bins:
        return Bins.from_dict(self.bins)


INTERVAL_RANGE = 24  # input intervals are clipped to +-2 octaves
N_INTERVAL_IN = 2 * INTERVAL_RANGE + 2  # ... plus one index for "no previous pitch"
N_INTERVAL_OUT = 2 * (N_PITCH - 1) + 1  # every interval between two MIDI pitches


class _Head(nn.Module):
    def __init__(self, hidden: int, head_hidden: int, n_out: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, head_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(head_hidden, n_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def hidden(self, x: Tensor) -> Tensor:
        return self.net[2](self.net[1](self.net[0](x)))

    def out(self, hidden: Tensor) -> Tensor:
        return self.net[3](hidden)


def interval_index(pitch: Tensor, previous: Tensor) -> Tensor:
    """Input index of the interval previous -> pitch (clipped); start tokens get their own index."""
    clipped = (pitch - previous).clamp(-INTERVAL_RANGE, INTERVAL_RANGE) + INTERVAL_RANGE
    none = (pitch == START_PITCH) | (previous == START_PITCH)
    return torch.where(none, torch.full_like(clipped, N_INTERVAL_IN - 1), clipped)


def scale_gradient(x: Tensor, factor: float) -> Tensor:
    """`x` going forward; `factor` times its gradient going back."""
    if factor == 1.0:
        return x
    return x * factor + x.detach() * (1.0 - factor)


class ImprovNet(nn.Module):
    """The trainable network: embeddings -> nn.LSTM -> four chained heads."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        bins = config.binning
        e, h = config.embed, config.hidden
        self.pitch_in = nn.Embedding(N_PITCH + 1, e)
        self.step_in = nn.Embedding(bins.n_step, e)
        self.duration_in = nn.Embedding(bins.n_duration, e)
        self.velocity_in = nn.Embedding(bins.n_velocity, e)
        self.input_dropout = nn.Dropout(config.dropout / 2)
        self.lstm = nn.LSTM(e, h, config.layers, batch_first=True, dropout=config.dropout)
        self.out_dropout = nn.Dropout(config.dropout)
        # Embeddings of the already chosen parts of the next event, added to the LSTM output.
        self.step_cond = nn.Embedding(bins.n_step, h)
        self.pitch_cond = nn.Embedding(N_PITCH, h)
        self.duration_cond = nn.Embedding(bins.n_duration, h)
        hh, d = config.head_hidden, config.dropout
        self.step_head = _Head(h, hh, bins.n_step, d)
        self.pitch_head = _Head(h, hh, N_PITCH, d)
        self.duration_head = _Head(h, hh, bins.n_duration, d)
        self.velocity_head = _Head(h, hh, bins.n_velocity, d)
        self.interval_in = nn.Embedding(N_INTERVAL_IN, e)
        self.pitch_interval_out = nn.Linear(hh, N_INTERVAL_OUT)
        if not config.relative_pitch:  # present but zero, so one code path serves both kinds
            for parameter in (*self.interval_in.parameters(), *self.pitch_interval_out.parameters()):
                nn.init.zeros_(parameter)
                parameter.requires_grad_(False)
        self.register_buffer("_pitches", torch.arange(N_PITCH), persistent=False)
        self.times_in = nn.Linear(2, e)  # (step s, duration s) of the event, for lean inputs
        if not config.lean_inputs:
            for parameter in self.times_in.parameters():
                nn.init.zeros_(parameter)
                parameter.requires_grad_(False)
        self.register_buffer("_step_s", torch.tensor(bins.step_s, dtype=torch.float32), persistent=False)
        self.register_buffer("_duration_s", torch.tensor(bins.duration_s, dtype=torch.float32), persistent=False)
        rh = max(config.rhythm_hidden, 1)  # a 1-unit stand-in keeps one code path (and file layout)
        self.rhythm_lstm = nn.LSTM(e, rh, 1, batch_first=True)
        self.rhythm_mix = nn.Linear(rh, h)
        if not config.rhythm_hidden:
            for parameter in (*self.rhythm_lstm.parameters(), *self.rhythm_mix.parameters()):
                nn.init.zeros_(parameter)
                parameter.requires_grad_(False)

    def embed(self, pitch: Tensor, step: Tensor, duration: Tensor, velocity: Tensor) -> Tensor:
        previous = torch.cat([torch.full_like(pitch[:, :1], START_PITCH), pitch[:, :-1]], dim=1)
        return (
            self.pitch_in(pitch) + self.interval_in(interval_index(pitch, previous))
            + self.step_in(step) + self.duration_in(duration) + self.velocity_in(velocity)
        )

    def lean_embed(self, pitch: Tensor, step: Tensor, duration: Tensor) -> Tensor:
        times = torch.stack([self._step_s[step], self._duration_s[duration]], dim=-1)
        return self.pitch_in(pitch) + self.times_in(times)

    def forward(self, inputs: tuple[Tensor, ...], targets: tuple[Tensor, ...]) -> dict[str, Tensor]:
        """Logits for every head, teacher-forced: (B, T) token tensors in (pitch, step, duration, velocity) order."""
        x = self.input_dropout(self.embed(*inputs))
        main = self.input_dropout(self.lean_embed(*inputs[:3])) if self.config.lean_inputs else x
        out, _ = self.lstm(main)
        out = self.out_dropout(out)
        pitch, step, duration, _ = targets
        with_step = out + self.step_cond(step)
        hidden = self.pitch_head.hidden(with_step)
        rhythm = scale_gradient(out, self.config.rhythm_grad)
        if self.config.rhythm_hidden:
            own, _ = self.rhythm_lstm(x)
            rhythm = rhythm + self.rhythm_mix(self.out_dropout(own))
        with_pitch = rhythm + self.step_cond(step) + self.pitch_cond(pitch)
        return {
            "step": self.step_head(rhythm),
            "pitch": self.pitch_head.out(hidden) + self._interval_logits(hidden, inputs[0]),
            "duration": self.duration_head(with_pitch),
            "velocity": self.velocity_head(with_pitch + self.duration_cond(duration)),
        }

    def _interval_logits(self, hidden: Tensor, last_pitch: Tensor) -> Tensor:
        """Interval logits moved onto absolute pitches: entry p scores the interval last -> p."""
        scores = self.pitch_interval_out(hidden)  # (B, T, N_INTERVAL_OUT)
        index = self._pitches + (N_PITCH - 1) - last_pitch.clamp(max=N_PITCH - 1).unsqueeze(-1)
        moved = scores.gather(-1, index)
        return moved.masked_fill((last_pitch == START_PITCH).unsqueeze(-1), 0.0)


class StepModel(nn.Module):
    """One event at a time, for the live path and for sampling; scripted for export.

    State is one tensor (2, layers, hidden + rhythm_hidden + 1): h then c of
    every layer of the main LSTM, then (first row only) of the rhythm LSTM; the
    last column holds the last pitch fed (128 = the start token). Treat it as
    opaque: get one from `initial_state` and pass back what `feed` returns.
    """

    def __init__(self, net: ImprovNet, summary: dict[str, Any] | None = None) -> None:
        super().__init__()
        config = net.config
        self.format = FORMAT
        self.format_version = FORMAT_VERSION
        self.bins_json = json.dumps(config.bins)
        self.config_json = json.dumps(asdict(config))
        self.summary_json = json.dumps(summary or {})
        self.n_pitch = N_PITCH
        self.start_pitch = START_PITCH
        self.layers = config.layers
        self.hidden = config.hidden
        self.pitch_in = net.pitch_in
        self.step_in = net.step_in
        self.duration_in = net.duration_in
        self.velocity_in = net.velocity_in
        cells = []
        for layer in range(config.layers):
            cell = nn.LSTMCell(config.embed if layer == 0 else config.hidden, config.hidden)
            cell.weight_ih = getattr(net.lstm, f"weight_ih_l{layer}")
            cell.weight_hh = getattr(net.lstm, f"weight_hh_l{layer}")
            cell.bias_ih = getattr(net.lstm, f"bias_ih_l{layer}")
            cell.bias_hh = getattr(net.lstm, f"bias_hh_l{layer}")
            cells.append(cell)
        self.cells = nn.ModuleList(cells)
        self.step_cond = net.step_cond
        self.pitch_cond = net.pitch_cond
        self.duration_cond = net.duration_cond
        self.step_head = net.step_head
        self.pitch_head = net.pitch_head
        self.duration_head = net.duration_head
        self.velocity_head = net.velocity_head
        self.interval_in = net.interval_in
        self.pitch_interval_out = net.pitch_interval_out
        self.relative_pitch = bool(config.relative_pitch)
        self.n_duration = Bins.from_dict(config.bins).n_duration
        self.n_velocity = Bins.from_dict(config.bins).n_velocity
        self.interval_range = INTERVAL_RANGE
        self.no_interval = N_INTERVAL_IN - 1
        self.rhythm_hidden = int(config.rhythm_hidden)
        self.width = self.hidden + self.rhythm_hidden + 1
        rhythm_cell = nn.LSTMCell(config.embed, max(self.rhythm_hidden, 1))
        rhythm_cell.weight_ih = net.rhythm_lstm.weight_ih_l0
        rhythm_cell.weight_hh = net.rhythm_lstm.weight_hh_l0
        rhythm_cell.bias_ih = net.rhythm_lstm.bias_ih_l0
        rhythm_cell.bias_hh = net.rhythm_lstm.bias_hh_l0
        self.rhythm_cell = rhythm_cell
        self.rhythm_mix = net.rhythm_mix
        self.lean_inputs = bool(config.lean_inputs)
        self.times_in = net.times_in
        self.step_seconds = list(Bins.from_dict(config.bins).step_s)
        self.duration_seconds = list(Bins.from_dict(config.bins).duration_s)

    @torch.jit.export
    def initial_state(self) -> Tensor:
        state = torch.zeros(2, self.layers, self.width)
        state[:, :, self.width - 1] = float(self.start_pitch)
        return state

    def _last_pitch(self, state: Tensor) -> int:
        return int(state[0, 0, self.width - 1].item())

    @torch.jit.export
    def feed(self, state: Tensor, pitch: int, step: int, duration: int, velocity: int) -> Tensor:
        """Advance the state by one event (bin indices; pitch 128 is the start token)."""
        last = self._last_pitch(state)
        if pitch == self.start_pitch or last == self.start_pitch:
            interval = self.no_interval
        else:
            interval = min(max(pitch - last, -self.interval_range), self.interval_range) + self.interval_range
        x = (
            self.pitch_in.weight[pitch] + self.interval_in.weight[interval] + self.step_in.weight[step]
            + self.duration_in.weight[duration] + self.velocity_in.weight[velocity]
        ).unsqueeze(0)
        embedded = x
        if self.lean_inputs:
            times = torch.tensor([self.step_seconds[step], self.duration_seconds[duration]])
            x = (self.pitch_in.weight[pitch] + self.times_in(times)).unsqueeze(0)
        hs: list[Tensor] = []
        cs: list[Tensor] = []
        i = 0
        for cell in self.cells:
            h, c = cell(x, (state[0, i, : self.hidden].unsqueeze(0), state[1, i, : self.hidden].unsqueeze(0)))
            hs.append(h)
            cs.append(c)
            x = h
            i += 1
        core = torch.stack([torch.cat(hs), torch.cat(cs)])
        if self.rhythm_hidden > 0:
            own = state[:, 0, self.hidden : self.width - 1]
            h, c = self.rhythm_cell(embedded, (own[0].unsqueeze(0), own[1].unsqueeze(0)))
            rhythm = torch.zeros(2, self.layers, self.rhythm_hidden)
            rhythm[0, 0] = h[0]
            rhythm[1, 0] = c[0]
            core = torch.cat([core, rhythm], dim=2)
        return torch.cat([core, torch.full((2, self.layers, 1), float(pitch))], dim=2)

    def _top(self, state: Tensor) -> Tensor:
        return state[0, -1, : self.hidden]

    def _rhythm_top(self, state: Tensor) -> Tensor:
        """What the rhythm heads start from: the main LSTM's output, plus the rhythm LSTM's."""
        top = state[0, -1, : self.hidden]
        if self.rhythm_hidden > 0:
            top = top + self.rhythm_mix(state[0, 0, self.hidden : self.width - 1])
        return top

    @torch.jit.export
    def step_logits(self, state: Tensor) -> Tensor:
        return self.step_head(self._rhythm_top(state))

    @torch.jit.export
    def pitch_logits(self, state: Tensor, step: int) -> Tensor:
        hidden = self.pitch_head.hidden(self._top(state) + self.step_cond.weight[step])
        logits = self.pitch_head.out(hidden)
        last = self._last_pitch(state)
        if self.relative_pitch and last != self.start_pitch:
            scores = self.pitch_interval_out(hidden)
            logits = logits + scores[self.n_pitch - 1 - last : 2 * self.n_pitch - 1 - last]
        return logits

    @torch.jit.export
    def duration_logits(self, state: Tensor, step: int, pitch: int) -> Tensor:
        return self.duration_head(self._rhythm_top(state) + self.step_cond.weight[step] + self.pitch_cond.weight[pitch])

    @torch.jit.export
    def velocity_logits(self, state: Tensor, step: int, pitch: int, duration: int) -> Tensor:
        h = self._rhythm_top(state) + self.step_cond.weight[step] + self.pitch_cond.weight[pitch]
        return self.velocity_head(h + self.duration_cond.weight[duration])

    @torch.jit.export
    def probabilities(self, logits: Tensor, temperature: float, top_p: float, allowed: Tensor) -> Tensor:
        """The distribution `improv.model.sampling.probabilities` gives (mask, temperature, top-p), in torch.

        Kept in the file so one call per event can sample; `tests/test_model.py` checks it
        against the reference in `improv.model.sampling`.
        """
        z = logits.double()
        masked = z.masked_fill(~allowed, float("-inf"))
        if not bool(torch.isfinite(masked).any()):  # a mask that leaves nothing is ignored
            masked = z
        w = torch.exp((masked - masked.max()) / temperature)
        if top_p < 1.0:
            descending, _ = torch.sort(w, descending=True)
            cumulative = torch.cumsum(descending, 0)
            k = int(torch.searchsorted(cumulative, top_p * cumulative[-1]).item())
            if k < w.numel():
                w = w.masked_fill(w < descending[k], 0.0)
        return w / w.sum()

    def _draw(self, logits: Tensor, temperature: float, top_p: float, allowed: Tensor, u: float) -> tuple[int, float, float]:
        """A token by inverse CDF with the uniform `u`, its NLL and the entropy at T = 1 (nats)."""
        p = self.probabilities(logits, temperature, top_p, allowed)
        cumulative = torch.cumsum(p, 0)
        token = int(torch.searchsorted(cumulative, u * cumulative[-1], right=True).item())
        if token >= p.numel():
            token = int(torch.nonzero(p).max().item())
        log_p = torch.log_softmax(logits.double(), 0)
        entropy = -float((log_p.exp() * log_p).sum().item())
        return token, -float(log_p[token].item()), entropy

    @torch.jit.export
    def sample_next(
        self, state: Tensor, temperature: float, top_p: float, uniforms: Tensor,
        pitch_allowed: Tensor, step_allowed: Tensor, chord: Tensor,
    ) -> tuple[Tensor, list[int], list[float]]:
        """Sample the next event and feed it, in one call: the live instrument's per-event work.

        `uniforms` are four numbers in [0, 1) (one per head, from the caller's seeded RNG),
        `chord` marks pitches already struck at the current onset (barred when the step is 0).
        Returns the new state, the tokens (pitch, step, duration, velocity) and [NLL, entropy]
        summed over the heads at T = 1.
        """
        step, nll, entropy = self._draw(self.step_logits(state), temperature, top_p, step_allowed, float(uniforms[0]))
        allowed = pitch_allowed & ~chord if step == 0 else pitch_allowed
        pitch, n, e = self._draw(self.pitch_logits(state, step), temperature, top_p, allowed, float(uniforms[1]))
        nll += n
        entropy += e
        everything = torch.ones(self.n_duration, dtype=torch.bool)
        duration, n, e = self._draw(self.duration_logits(state, step, pitch), temperature, top_p, everything, float(uniforms[2]))
        nll += n
        entropy += e
        every_velocity = torch.ones(self.n_velocity, dtype=torch.bool)
        velocity, n, e = self._draw(
            self.velocity_logits(state, step, pitch, duration), temperature, top_p, every_velocity, float(uniforms[3])
        )
        nll += n
        entropy += e
        return self.feed(state, pitch, step, duration, velocity), [pitch, step, duration, velocity], [nll, entropy]

    def forward(self, state: Tensor, pitch: int, step: int, duration: int, velocity: int) -> Tensor:
        return self.feed(state, pitch, step, duration, velocity)


def export(net: ImprovNet, path: Path, summary: dict[str, Any] | None = None) -> None:
    """Write a self-contained TorchScript file (CPU, eval mode)."""
    net = net.to("cpu").eval()
    step = StepModel(net, summary).eval()
    with torch.no_grad():
        scripted = torch.jit.script(step)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": asdict(net.config), "summary": summary or {}}
    torch.jit.save(scripted, str(path), _extra_files={"improv.json": json.dumps(meta)})


@dataclass
class LoadedModel:
    """A scripted `StepModel` plus what travels with it."""

    module: torch.jit.ScriptModule
    bins: Bins
    config: dict
    summary: dict
    path: Path


def load(path: str | Path) -> LoadedModel:
    """Load an improv model file; anything else gives a one-line `ModelFileError`."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: a directory, not a model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    extra = {"improv.json": ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as error:
        reason = " ".join(str(error).split()).split(". ")[0][:100]
        raise ModelFileError(f"{path}: not an improv model (not a TorchScript file: {reason})") from None
    try:
        meta = json.loads(extra["improv.json"] or "{}")
    except json.JSONDecodeError:
        meta = {}
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an improv model (TorchScript file without improv metadata)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: improv model format {meta.get('format_version')} is not supported (need {FORMAT_VERSION})")
    module.eval()
    return LoadedModel(module, Bins.from_dict(meta["config"]["bins"]), meta["config"], meta.get("summary", {}), path)


_ADDED_LATER = {
    "interval_in.weight", "pitch_interval_out.weight", "pitch_interval_out.bias",
    "rhythm_lstm.weight_ih_l0", "rhythm_lstm.weight_hh_l0", "rhythm_lstm.bias_ih_l0", "rhythm_lstm.bias_hh_l0",
    "rhythm_mix.weight", "rhythm_mix.bias", "times_in.weight", "times_in.bias",
}


def network_from(model: LoadedModel) -> ImprovNet:
    """The trainable `ImprovNet` behind a loaded model file (for batched scoring or fine-tuning).

    Files from before relative pitch existed lack its (zero) parameters; they stay zero.
    """
    net = ImprovNet(ModelConfig(**model.config))
    state = {}
    for key, value in model.module.state_dict().items():
        if key.startswith("cells."):
            _, layer, name = key.split(".")
            key = f"lstm.{name}_l{layer}"
        elif key.startswith("rhythm_cell."):
            key = f"rhythm_lstm.{key.split('.')[1]}_l0"
        state[key] = value
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - _ADDED_LATER:
        raise ModelFileError(f"{model.path}: model weights do not match its config ({len(missing)} missing, "
                             f"{len(unexpected)} unexpected)")
    return net.eval()
