"""pytester runs the inner suites in this process and, after each run, forgets the modules the
run imported. Importing the server, its web stack and the harness here, once, keeps them
loaded, so each inner run costs its tests rather than a fresh import of FastAPI."""

import localmesh.emulator.app  # noqa: F401
import localmesh.fixtures.context  # noqa: F401
import localmesh.fixtures.shared  # noqa: F401
import localmesh.fixtures.worker  # noqa: F401
import localmesh.scripted_llm  # noqa: F401
