"""report.html: one self-contained page (tables, inline PNG figures, inline WAV players).

Nothing is fetched when the page opens: figures are base64 PNG `<img>`s, sounds are
base64 16-bit PCM WAV `<audio>` sources, the style sheet is inline, no script.
"""
from __future__ import annotations

import base64
import html
import io
import wave
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

EXAMPLE_ITEMS = 3


def wav_data_uri(audio: np.ndarray, sr: int) -> str:
    """Mono float audio -> data URI of a 16-bit PCM WAV (peak-normalised only if it clips)."""
    x = np.nan_to_num(np.asarray(audio, dtype=np.float64))
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:
        x = x / peak
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(int(sr))
        handle.writeframes(pcm.tobytes())
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log_spec(audio: np.ndarray, n_fft: int = 512) -> np.ndarray:
    import librosa

    n_fft = min(n_fft, max(16, 2 ** int(np.log2(max(len(audio), 16)))))
    spec = np.abs(librosa.stft(np.asarray(audio, np.float32), n_fft=n_fft, hop_length=n_fft // 4))
    return 20 * np.log10(np.maximum(spec, 1e-5))


def spectrogram_figure(originals: np.ndarray, recons: Sequence[np.ndarray],
                       labels: Sequence[str], sr: int) -> str:
    plt = _plt()
    n = min(EXAMPLE_ITEMS, len(originals))
    cols = 1 + len(recons)
    fig, axes = plt.subplots(n, cols, figsize=(3.2 * cols, 2.2 * n), squeeze=False)
    for i in range(n):
        for c, (audio, label) in enumerate(zip([originals[i]] + [r[i] for r in recons],
                                               ["original"] + list(labels))):
            spec = _log_spec(audio)
            ax = axes[i, c]
            ax.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                      vmin=spec.max() - 80, vmax=spec.max(),
                      extent=(0, len(audio) / sr, 0, sr / 2000))
            ax.set_title(f"item {i}: {label}", fontsize=8)
            ax.tick_params(labelsize=6)
            ax.set_ylabel("kHz", fontsize=6)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.92, hspace=0.45, wspace=0.25)
    return _png(fig)


def latent_figure(z: np.ndarray, curves_norm: np.ndarray, names: Sequence[str], title: str) -> str:
    """First two principal components of z's frames, coloured by two attributes."""
    plt = _plt()
    frames = z.transpose(0, 2, 1).reshape(-1, z.shape[1])
    centred = frames - frames.mean(0)
    if centred.shape[1] >= 2:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
    else:
        xy = np.stack([centred[:, 0], np.zeros(len(centred))], 1)
    show = [a for a in ("rms", "centroid") if a in names][:2] or list(names[:2])
    fig, axes = plt.subplots(1, len(show), figsize=(3.6 * len(show), 3.0), squeeze=False)
    for ax, name in zip(axes[0], show):
        colour = curves_norm[:, list(names).index(name)].reshape(-1)
        points = ax.scatter(xy[:, 0], xy[:, 1], c=colour, s=4, cmap="viridis", vmin=-1, vmax=1)
        ax.set_title(f"{title}: z PCA, colour = {name}", fontsize=8)
        ax.tick_params(labelsize=6)
        fig.colorbar(points, ax=ax)
    return _png(fig)


def control_figure(examples: Sequence[Dict[str, Any]], attribute: str, hop: int, sr: int) -> str:
    """Target against measured curve for every modulator of one attribute (item 0)."""
    plt = _plt()
    rows = [e for e in examples if e["size"] == 1 and e["attributes"] == [attribute]
            and e["item"] == 0]
    fig, axes = plt.subplots(1, len(rows), figsize=(2.3 * len(rows), 2.0), squeeze=False,
                             sharey=True)
    for ax, ex in zip(axes[0], rows):
        a = ex["names"].index(attribute)
        t = np.arange(ex["target"].shape[-1]) * hop / sr
        ax.plot(t, ex["original"][a], color="0.7", lw=1, label="original")
        ax.plot(t, ex["target"][a], color="C0", lw=1.5, label="target")
        ax.plot(t, ex["measured"][a], color="C3", lw=1, label="measured")
        ax.set_title(f"{attribute}: {ex['kinds'][0]}", fontsize=8)
        ax.set_ylim(-1.1, 1.1)
        ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.86, wspace=0.08)
    return _png(fig)


def _fmt(value: Optional[float], digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _label(m: Dict[str, Any]) -> str:
    variant = {"frave": "F-RAVE", "crave": "C-RAVE"}.get(m["variant"], m["variant"])
    return f"{m['name']} ({variant})"


def _tables(metrics: Dict[str, Any]) -> List[str]:
    models, paper = metrics["models"], metrics["paper"]
    out = ["<h2>Reconstruction (test split)</h2>"]
    rows = [[f"paper {k}", _fmt(v["jnd"]), _fmt(v["mel_l1"], 2), _fmt(v["mstft"], 2),
             _fmt(v["centroid_corr"], 2)] for k, v in paper["reconstruction"].items()]
    for m in models:
        r, single = m["reconstruction"], m["control"]["single"]
        centroid = single.get("centroid", {}).get("all", {}).get("corr")
        rows.append([_label(m), "n/a", _fmt(r["mel_l1"]["mean"], 2), _fmt(r["mstft"]["mean"], 2),
                     _fmt(centroid, 2)])
    out.append(_table(["model", "JND", "mel L1 (dB)", "mSTFT", "centroid control corr."], rows))
    out.append('<p class="note">JND: no maintained perceptual-metric package '
               f"({html.escape(models[0]['reconstruction']['perceptual']['reason'])}). "
               "The paper's rows use its own scalings and NSynth; compare our models with "
               "each other, and the paper for orientation.</p>")

    out.append("<h2>Control: (Pearson + 1) / 2 against the target, by attributes changed</h2>")
    out.append("<p>rms is scored on every frame; the other attributes where the rms asked "
               "for is audible (>= -60 dBFS), since silence's descriptors read 0 whatever "
               "is asked. The row below each model scores every frame.</p>")
    sizes = ["1", "2", "3", "4"]
    rows = [[f"paper {k}"] + [_fmt(v.get(s), 2) for s in sizes] + ["–", "–"]
            for k, v in paper["control_corr_by_size"].items()]
    for m in models:
        by = m["control"]["by_size"]
        rows.append([_label(m)] + [_fmt(by.get(s, {}).get("corr"), 2) for s in sizes]
                    + [_fmt(by["1"]["l1"]), _fmt(by["1"]["leak_l1"])])
        if "corr_all_frames" in by["1"]:
            rows.append([f"{_label(m)}, every frame, silence included"]
                        + [_fmt(by.get(s, {}).get("corr_all_frames"), 2) for s in sizes]
                        + ["–", "–"])
    out.append(_table(["model", "1", "2", "3", "4", "L1 (1 attr.)", "leak L1 (1 attr.)"], rows))

    names = models[0]["attributes"]
    out.append("<h2>Control of single attributes (mean over modulators)</h2>")
    rows = [[f"paper {k}"] + [_fmt(v.get(n), 2) for n in names] + [_fmt(v.get("mean"), 2)]
            for k, v in paper["control_corr_single"].items()]
    for m in models:
        single = m["control"]["single"]
        mean = m["control"]["by_size"]["1"]["corr"]
        rows.append([_label(m)] + [_fmt(single.get(n, {}).get("all", {}).get("corr"), 2)
                                   for n in names] + [_fmt(mean, 2)])
    out.append(_table(["model"] + list(names) + ["mean"], rows))
    for m in models:
        single = m["control"]["single"]
        mods = m["control"]["modulators"]
        rows = [[n] + [f"{_fmt(single[n]['modulators'][k]['corr'], 2)} / "
                       f"{_fmt(single[n]['modulators'][k]['l1'], 2)} / "
                       f"{_fmt(single[n]['modulators'][k]['leak_l1'], 2)}" for k in mods]
                for n in m["attributes"]]
        out.append(f"<h3>{html.escape(_label(m))}: corr / L1 / leak L1 per modulator</h3>")
        out.append(_table(["attribute"] + list(mods), rows, "small"))

    out.append("<h2>Disentanglement: a fresh probe predicting 16 quantile bins from z</h2>")
    rows = []
    for m in models:
        d = m["disentanglement"]
        rows.append([_label(m)] + [_fmt(d["attributes"][n]["accuracy"]) for n in names]
                    + [_fmt(d["accuracy"]), _fmt(d["chance"])])
    out.append(_table(["model"] + list(names) + ["mean", "chance"], rows))
    out.append('<p class="note">Near chance: z carries little of the attributes (F-RAVE\'s '
               "aim); well above: z duplicates the attribute controls (expected of C-RAVE).</p>")

    played = [m for m in models if m.get("instrument")]
    if played:
        out.append("<h2>Played as the module plays it</h2>")
        rows = []
        for m in played:
            p, g = m["instrument"]["pitch"], m["instrument"]["generation"]
            pitch = (f"{_fmt(p['median_abs_cents'], 1)} / {_fmt(p['p90_abs_cents'], 1)} "
                     f"({p['unvoiced_notes']} unvoiced)") if p.get("available") else "no f0"
            rows.append([_label(m), pitch, f"{_fmt(g['seconds'], 0)} s of {g['mode']}",
                         "–" if g["nan_at_s"] is None else f"at {_fmt(g['nan_at_s'], 1)} s",
                         str(g["clipped_samples"]), _fmt(g["longest_silence_s"], 2),
                         f"{g.get('unanswered_gates', '–')} of {g.get('gates', '–')}",
                         _answer(g.get("answer_ms")),
                         "ok" if g["ok"] else "failed"])
        out.append(_table(["model", "1 V/oct error, median / p90 (cents)", "generation", "NaN",
                           "clipped samples", "longest silence (s)", "gates unanswered",
                           "gate to answer, p10 / p50 / p90 (ms)", "verdict"], rows))
    return out


def _answer(ms: Any) -> str:
    if not ms or ms.get("p50") is None:
        return "–"
    return " / ".join(_fmt(ms[q], 0) for q in ("p10", "p50", "p90"))


def _audio(uri: str, label: str) -> str:
    return (f'<figure class="snd"><figcaption>{html.escape(label)}</figcaption>'
            f'<audio controls preload="auto" src="{uri}"></audio></figure>')


def _img(uri: str, alt: str) -> str:
    return f'<img class="fig" alt="{html.escape(alt)}" src="{uri}">'


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:right}td:first-child,th:first-child{text-align:left}thead{background:#f1f1f1}
table.small{font-size:.85em}.note{color:#555;font-size:.9em}img.fig{max-width:100%;display:block;
margin:.5em 0}figure.snd{display:inline-block;margin:.3em .6em .3em 0}
figure.snd figcaption{font-size:.8em;color:#444}section{margin-top:2em}
"""


def write_report(path: Path, metrics: Dict[str, Any], artefacts: Sequence[Dict[str, Any]]) -> None:
    models = metrics["models"]
    sr = metrics["data"]["sample_rate"]
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>NeuroRave evaluation</title><style>{STYLE}</style></head><body>",
             "<h1>NeuroRave evaluation</h1>",
             f"<p>Data: {html.escape(metrics['data']['path'])}, test split, "
             f"{metrics['data']['items']} items ({metrics['data']['seconds']:.1f} s) at {sr} Hz. "
             "Models: " + "; ".join(html.escape(f"{_label(m)} from {m['kind']}") for m in models)
             + ".</p>"]
    parts += _tables(metrics)

    parts.append("<section><h2>Reconstructions</h2>")
    parts.append(_img(spectrogram_figure(artefacts[0]["originals"],
                                         [a["reconstructions"] for a in artefacts],
                                         [_label(m) for m in models], sr), "spectrograms"))
    for i in range(min(EXAMPLE_ITEMS, len(artefacts[0]["originals"]))):
        parts.append("<div>" + _audio(wav_data_uri(artefacts[0]["originals"][i], sr),
                                      f"item {i}: original")
                     + "".join(_audio(wav_data_uri(a["reconstructions"][i], sr),
                                      f"item {i}: {_label(m)}")
                               for m, a in zip(models, artefacts)) + "</div>")
    parts.append("</section><section><h2>Latent space</h2>")
    for m, a in zip(models, artefacts):
        parts.append(_img(latent_figure(a["z"], a["curves_norm"], m["attributes"], _label(m)),
                          f"latent projection {m['name']}"))
    parts.append("</section><section><h2>Control experiments (item 0)</h2>"
                 '<p class="note">Grey: the original curve; blue: the target; red: measured '
                 "on the output. Normalised units ([-1, 1] over the model's range).</p>")
    for m, a in zip(models, artefacts):
        parts.append(f"<h3>{html.escape(_label(m))}</h3>")
        for ex in a["examples"]:
            ex["names"] = m["attributes"]
        for name in m["attributes"]:
            parts.append(_img(control_figure(a["examples"], name, m["hop"], sr),
                              f"control {name} {m['name']}"))
            parts.append("<div>" + "".join(
                _audio(wav_data_uri(ex["audio"], sr), f"{name}: {ex['kinds'][0]}")
                for ex in a["examples"]
                if ex["size"] == 1 and ex["attributes"] == [name] and ex["item"] == 0) + "</div>")
        multi = [ex for ex in a["examples"] if ex["size"] > 1 and ex["item"] == 0]
        if multi:
            parts.append("<h4>Several attributes at once</h4><div>" + "".join(
                _audio(wav_data_uri(ex["audio"], sr),
                       ", ".join(f"{n}: {k}" for n, k in zip(ex["attributes"], ex["kinds"])))
                for ex in multi) + "</div>")
    parts.append("</section></body></html>\n")
    path.write_text("\n".join(parts), encoding="utf-8")
