"""The streaming interface exports: a decoder step traced to ONNX opset 13 runs in ONNX
Runtime frame by frame and equals the torch decoder run offline (what issue 5 builds on)."""
import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from neurorave.models.config import load_config
from neurorave.models.nets.streaming import StreamingStep, cache_specs
from neurorave.models.training.module import build_nets


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name,dc_block", [("tiny", 0.0), ("tiny", 20.0)])
def test_decoder_step_exports_to_onnx_opset13_and_streams_like_offline(name, dc_block):
    cfg = load_config(name)
    m = cfg.model
    m.band_dc_block = dc_block  # the band signals' DC blocker: two more state cells
    torch.manual_seed(0)
    dec = build_nets(cfg)["decoder"].eval()
    per_frame = m.hop // m.bands
    specs = cache_specs(dec, 1)
    step = StreamingStep(dec, n_inputs=3)
    example = (torch.zeros(1, m.latent_size, 1), torch.zeros(1, len(m.attributes), 1),
               torch.zeros(1, m.bands, per_frame), *[torch.zeros(s) for _, s in specs])
    in_names = ["z", "attributes", "noise"] + [f"cache_in_{i}" for i in range(len(specs))]
    out_names = ["audio"] + [f"cache_out_{i}" for i in range(len(specs))]
    buffer = io.BytesIO()
    torch.onnx.export(step, example, buffer, opset_version=13, input_names=in_names,
                      output_names=out_names, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 13

    frames = 64
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1, m.latent_size, frames, generator=g)
    attrs = torch.rand(1, len(m.attributes), frames, generator=g) * 2 - 1
    noise = torch.rand(1, m.bands, frames * per_frame, generator=g) * 2 - 1
    with torch.no_grad():
        offline = dec(z, attrs, noise).numpy()
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    caches = [np.zeros(s, dtype=np.float32) for _, s in specs]
    outs = []
    for f in range(frames):
        feed = {"z": z[..., f:f + 1].numpy(), "attributes": attrs[..., f:f + 1].numpy(),
                "noise": noise[..., f * per_frame:(f + 1) * per_frame].numpy()}
        feed.update({f"cache_in_{i}": c for i, c in enumerate(caches)})
        result = session.run(out_names, feed)
        outs.append(result[0])
        caches = result[1:]
    streamed = np.concatenate(outs, axis=-1)
    assert streamed.shape == offline.shape
    assert float(np.abs(streamed - offline).max()) <= 1e-4
