# The MeshAgent docs' Worker service sample, as written, with only its imports changed
# to localmesh's Worker SDK (the docs import these names from meshagent.*).
# Run it:  localmesh service run main.py --room quickstart
#     or:  meshagent service run main.py --room quickstart
import asyncio
import logging

from localmesh.worker import (
    OpenAIResponsesAdapter,
    OpenAIResponsesToolResponseAdapter,
    ServiceHost,
    StorageToolkit,
    Worker,
    otel_config,
)

# Enable OpenTelemetry logging and tracing for the agent
otel_config(service_name="worker")
log = logging.getLogger("worker")

# The port comes from MESHAGENT_PORT, which `service run` (and a deployed service) sets.
service = ServiceHost()


@service.path(path="/worker", identity="worker")
class StorageWorker(Worker):
    def __init__(self):
        super().__init__(
            queue="worker-queue",
            name="worker",
            title="storage worker",
            description="Processes queued tasks and saves the results to room storage",
            llm_adapter=OpenAIResponsesAdapter(),
            tool_adapter=OpenAIResponsesToolResponseAdapter(),
            toolkits=[StorageToolkit()],
            rules=[
                "You will receive a task: carry it out and save the results to room storage.",
                "You are not an interactive agent, so you must not ask the user questions.",
            ],
        )

    async def process_message(self, *, chat_context, message, toolkits):
        log.info(f"processing {message}")
        response = await super().process_message(
            chat_context=chat_context, message=message, toolkits=toolkits
        )
        log.info(f"response {response}")
        return response


asyncio.run(service.run())
