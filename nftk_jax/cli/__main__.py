"""``python -m nftk_jax.cli``: the same as the ``nftk`` command."""

import sys

from ._main import main

sys.exit(main())
