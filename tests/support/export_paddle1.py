"""Re-save a legacy inference model as a Paddle 1.x directory: __model__ + one file per parameter.

    python tests/support/export_paddle1.py MODEL_PREFIX OUT_DIR
"""
import os
import sys
os.environ["FLAGS_enable_pir_api"] = "0"
import paddle
paddle.enable_static()
exe = paddle.static.Executor(paddle.CPUPlace())
program, feeds, fetches = paddle.static.load_inference_model(sys.argv[1], exe)
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "__model__"), "wb").write(program.desc.serialize_to_string())
params = [v for v in program.list_vars() if v.persistable and v.name not in ("feed", "fetch")]
paddle.static.save_vars(exe, out, main_program=program, vars=params, filename=None)
print(feeds, [f.name for f in fetches], len(params))
