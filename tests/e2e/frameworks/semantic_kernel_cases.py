"""semantic-kernel's AzureChatCompletion against Cielo with Entra tokens (`ad_token_provider`)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated, Any

from cases_common import API_VERSION, CHAT, ENDPOINT, WEATHER_QUESTION, TokenProvider, main
from semantic_kernel import Kernel
from semantic_kernel.connectors.ai.function_choice_behavior import FunctionChoiceBehavior
from semantic_kernel.connectors.ai.open_ai import AzureChatCompletion, AzureChatPromptExecutionSettings
from semantic_kernel.contents import ChatHistory
from semantic_kernel.functions import kernel_function

provider = TokenProvider()


class WeatherPlugin:
    def __init__(self) -> None:
        self.calls: list[str] = []

    @kernel_function(name="get_weather", description="The current weather in a city.")
    def get_weather(self, city: Annotated[str, "The city's name"]) -> str:
        self.calls.append(city)
        return f"Sunny, 21 C in {city}"


def service() -> AzureChatCompletion:
    return AzureChatCompletion(service_id="cielo", deployment_name=CHAT, endpoint=ENDPOINT, api_version=API_VERSION,
                               ad_token_provider=provider)


async def chat() -> dict[str, Any]:
    history = ChatHistory()
    history.add_user_message("Say hello.")
    settings = AzureChatPromptExecutionSettings(service_id="cielo", max_tokens=8, temperature=0)
    answer = await service().get_chat_message_content(chat_history=history, settings=settings)
    assert answer is not None
    return {"version": version("semantic-kernel"), "content": str(answer), "finish_reason": str(answer.finish_reason),
            "usage": answer.metadata.get("usage"), "token_calls": provider.calls}


async def required() -> dict[str, Any]:
    """FunctionChoiceBehavior.Required(): the model must call the kernel function, which the kernel then runs and
    answers the model with; a last request without tools gets the text answer."""
    kernel = Kernel()
    chat_service = service()
    kernel.add_service(chat_service)
    plugin = WeatherPlugin()
    kernel.add_plugin(plugin, plugin_name="weather")
    history = ChatHistory()
    history.add_user_message(WEATHER_QUESTION)
    settings = AzureChatPromptExecutionSettings(service_id="cielo", max_tokens=40, temperature=0,
                                                function_choice_behavior=FunctionChoiceBehavior.Required())
    answer = await chat_service.get_chat_message_content(chat_history=history, settings=settings, kernel=kernel)
    return {"calls": plugin.calls, "answer": str(answer) if answer is not None else None,
            "roles": [m.role.value for m in history.messages]}


if __name__ == "__main__":
    main({"chat": chat, "required": required})
