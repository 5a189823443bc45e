"""Rebuild the bundled example: `python -m wherry.convert.example` (about 15 s)."""
import numpy as np

from wherry.convert.example import CALIB, EVAL, HERE, INPUTS, train_digits
from wherry.convert.example.train import digits_data

if __name__ == "__main__":
    result = train_digits(str(HERE / "digits_cnn"))
    (HERE / "digits_cnn.pdiparams.info").unlink(missing_ok=True)
    x_train, _, x_test, y_test = digits_data()
    np.savez(CALIB, x=x_train[:128])
    np.savez(INPUTS, x=x_test[:16])
    np.savez(EVAL, x=x_test, labels=y_test)
    print(f"digits CNN test accuracy {result['accuracy']:.4f}; wrote {HERE}")
