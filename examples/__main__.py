import asyncio
import sys

from examples.run import main

sys.exit(asyncio.run(main()))
