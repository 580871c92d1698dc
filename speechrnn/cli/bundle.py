"""`speechrnn add-aligner | export`: edit and convert bundles."""

import sys
from pathlib import Path

from ..errors import UserError
from .common import add_command


def cmd_add_aligner(args) -> None:
    """Store the recognizer bundle ALIGNER (and END_ALIGNER) inside BUNDLE; transcribe, align, mic and serve then
    take word start times from ALIGNER's CTC alignment and end times from END_ALIGNER's (ALIGNER's when not given);
    confidences stay the recognizer's. recipes/an4/aligner.sh trains a left-to-right aligner for starts and a
    right-to-left one for ends (a bidirectional recognizer puts each utterance's first character at frame 0). All
    must share vocabulary, features and frame rate."""
    from ..bundle import add_aligner

    out = args.output or args.bundle
    described = add_aligner(args.bundle, args.aligner, out, args.end_aligner)
    gives = {"aligner": ("starts" if "aligner_end" in described else "starts and ends", args.aligner),
             "aligner_end": ("ends", args.end_aligner or args.aligner)}  # both from ALIGNER: the ones inside it
    for role, aligner in described.items():
        rnn = aligner["config"]["model"]["rnn"]
        way = "bidirectional" if rnn["bidirectional"] else "right-to-left" if rnn.get("reverse") else "left-to-right"
        print(f"{out}: word {gives[role][0]} from {gives[role][1]} ({rnn['cell']} {rnn['num_layers']} x {way} "
              f"{rnn['hidden_size']}, lookahead {rnn.get('lookahead', 0)})", file=sys.stderr)


def cmd_export(args) -> None:
    """Write the bundle's model as ONNX with dynamic batch and time axes: inputs (B, N) waveforms [or (B, T, F)
    features] + input_lens (B,) -> log_probs (B, T', V) + output_lens (B,); vocabulary and feature settings are in
    the model's metadata. Checked against torch with onnxruntime. Needs pip install 'speechrnn[onnx]'. --int8 writes
    a bundle whose weight matrices are int8 with a scale per row (about 4x smaller; loaded back as float32, so it
    runs everywhere a bundle does)."""
    if not (args.onnx or args.int8):
        raise UserError("export: name an output, --onnx OUT.onnx and/or --int8 OUT.pt")
    if args.onnx:
        from ..export import export_onnx

        print(f"wrote {export_onnx(args.bundle, args.onnx, opset=args.opset, inputs=args.inputs)}", file=sys.stderr)
    if args.int8:
        from ..bundle import repack_bundle

        repack_bundle(args.bundle, args.int8, "int8")
        print(f"wrote {args.int8} ({Path(args.int8).stat().st_size / 1e6:.1f} MB)", file=sys.stderr)


def add_parsers(commands) -> None:
    p = add_command(commands, "add-aligner", cmd_add_aligner,
                    "put aligners in a bundle: the models its word times come from")
    p.add_argument("bundle", help="recognizer bundle")
    p.add_argument("aligner", help="aligner bundle for word starts (and ends, alone); or a bundle with aligners "
                                   "inside, whose aligners are taken")
    p.add_argument("end_aligner", nargs="?", help="aligner bundle for word ends")
    p.add_argument("-o", "--output", help="bundle to write (default: rewrite BUNDLE in place, atomically)")

    p = add_command(commands, "export", cmd_export, "export a bundle to ONNX, or as a 4x smaller int8 bundle")
    p.add_argument("bundle", help="model bundle")
    p.add_argument("--onnx", metavar="OUT", help="ONNX file to write (its folder is created)")
    p.add_argument("--int8", metavar="OUT", help="int8-weight bundle to write (e.g. for shipping a model)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 11..20 (default 17)")
    p.add_argument("--inputs", choices=["waveform", "features"], default="waveform",
                   help="audio bundles: the graph starts at the waveform (default) or at the features before CMVN "
                        "(speechrnn.export.raw_audio_features computes them); ink bundles take stroke features")
