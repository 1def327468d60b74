#!/usr/bin/env python3
"""Renders published chat templates with Python jinja2, the way transformers'
`apply_chat_template` does, and writes them with the expected prompts as fixtures under
Tests/Fixtures/chat-templates/ for ChatTemplateOracleTests.

    pip install jinja2
    python3 scripts/make_chat_template_fixtures.py [LLAMA_CPP_TEMPLATES_DIR]

The templates are llama.cpp's copies (models/templates/, fetched from each model's Hugging Face
repository by its scripts/get_chat_template.py) and the ChatML template of models/austen-moe.
"""

import json
import os
import shutil
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "chat-templates")
LLAMA_CPP = (
    sys.argv[1]
    if len(sys.argv) > 1
    else "/tmp/chronos-llama-cpp/llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates"
)

# The date strftime_now reports, so that templates printing today's date render the same twice.
NOW = datetime(2025, 7, 26, 14, 5, 9)

# name: (source file, bos_token, eos_token, whether its conversations include tools)
TEMPLATES = {
    "Qwen-Qwen3-0.6B": ("Qwen-Qwen3-0.6B.jinja", None, "<|im_end|>", True),
    "Qwen-Qwen2.5-7B-Instruct": ("Qwen-Qwen2.5-7B-Instruct.jinja", None, "<|im_end|>", True),
    "Mistral-Small-3.2-24B-Instruct-2506": ("Mistral-Small-3.2-24B-Instruct-2506.jinja", "<s>", "</s>", True),
    "deepseek-ai-DeepSeek-V3.1": (
        "deepseek-ai-DeepSeek-V3.1.jinja",
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        True,
    ),
    "meta-llama-Llama-3.1-8B-Instruct": (
        "meta-llama-Llama-3.1-8B-Instruct.jinja",
        "<|begin_of_text|>",
        "<|eot_id|>",
        True,
    ),
    "google-gemma-2-2b-it": ("google-gemma-2-2b-it.jinja", "<bos>", "<eos>", False),
    "HuggingFaceTB-SmolLM3-3B": ("HuggingFaceTB-SmolLM3-3B.jinja", None, "<|im_end|>", True),
    "openai-gpt-oss-120b": ("openai-gpt-oss-120b.jinja", "<|startoftext|>", "<|return|>", True),
    # GLM-4.6 (glm4_moe, GLM-4.5's chat format): the template writes [gMASK]<sop> itself.
    "zai-org-GLM-4.6": ("GLM-4.6.jinja", None, "<|endoftext|>", True),
    "austen-moe": (None, None, None, False),
}


def environment():
    """transformers' chat-template environment (utils/chat_template_utils.py)."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city — in °C.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "default": 5}},
            "required": ["query"],
        },
    },
}


def call(identifier, name, arguments):
    return {"id": identifier, "type": "function", "function": {"name": name, "arguments": arguments}}


SYSTEM = {"role": "system", "content": "You are a concise assistant."}
PLAIN = [
    [{"role": "user", "content": "Hello!"}],
    [SYSTEM, {"role": "user", "content": "What is 2 + 2?"}],
    [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one?"},
    ],
    [
        SYSTEM,
        {"role": "user", "content": "Translate 'good morning' into German."},
        {"role": "assistant", "content": "Guten Morgen."},
        {"role": "user", "content": "And into Japanese?"},
        {"role": "assistant", "content": "おはようございます。"},
    ],
    [{"role": "user", "content": "Grüße aus Köln! Wie geht's? 🌍 «ça va» — 日本語で答えて"}],
    [{"role": "user", "content": "  padded with spaces and newlines \n\n"}],
    [
        {"role": "system", "content": "Answer in French.\nKeep it short."},
        {"role": "user", "content": "Why is the sky blue?"},
        {"role": "assistant", "content": "À cause de la diffusion de Rayleigh."},
        {"role": "user", "content": "Merci !"},
    ],
    [
        {"role": "user", "content": "Think first."},
        {"role": "assistant", "content": "<think>\nThe user wants thought.\n</think>\n\nDone thinking."},
        {"role": "user", "content": "Again, with quotes: \"x\" and 'y' and \\n."},
    ],
    [
        {"role": "user", "content": "Count to three."},
        {"role": "assistant", "content": "1, 2, 3."},
        {"role": "user", "content": "Now backwards."},
        {"role": "assistant", "content": "3, 2, 1."},
        {"role": "user", "content": "Thanks."},
        {"role": "assistant", "content": "You're welcome!"},
    ],
    [{"role": "user", "content": ""}],
    [SYSTEM, {"role": "user", "content": "Summarise {{ braces }} and {% tags %} literally."}],
    [
        {"role": "user", "content": "Line one\nLine two\n\tTabbed"},
        {"role": "assistant", "content": "Got it:\n- one\n- two"},
        {"role": "user", "content": "Good."},
    ],
    [
        {"role": "system", "content": "/no_think Be brief."},
        {"role": "user", "content": "Hi"},
    ],
    [
        {"role": "user", "content": "Solve x + 1 = 3"},
        {"role": "assistant", "content": "x = 2", "reasoning_content": "Subtract one from both sides."},
        {"role": "user", "content": "And x + 2 = 3?"},
    ],
    [
        {"role": "user", "content": "Write a haiku about autumn."},
        {"role": "assistant", "content": "Leaves fall, slow and red —\nthe maple lets go of light.\nWind keeps what it can."},
        {"role": "user", "content": "Now one about winter, in Spanish."},
    ],
    [{"role": "user", "content": "```python\nprint('hi')\n```\nWhat does this print?"}],
]
TOOLS = [
    ([{"role": "user", "content": "What's the weather in Zürich?"}], [WEATHER_TOOL]),
    (
        [
            SYSTEM,
            {"role": "user", "content": "Weather in Paris, please."},
            {"role": "assistant", "content": "", "tool_calls": [call("call00001", "get_weather", {"city": "Paris"})]},
            {"role": "tool", "tool_call_id": "call00001", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
        ],
        [WEATHER_TOOL, SEARCH_TOOL],
    ),
    (
        [
            {"role": "user", "content": "Look up Köln and tell me the weather."},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [call("abcDEF123", "get_weather", {"city": "Köln", "unit": "celsius"})],
            },
            {"role": "tool", "tool_call_id": "abcDEF123", "content": "12 °C, Regen"},
            {"role": "assistant", "content": "It is 12 °C and raining in Köln."},
            {"role": "user", "content": "Thanks!"},
        ],
        [WEATHER_TOOL],
    ),
    (
        [
            {"role": "user", "content": "Search for Swift and for Jinja."},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    call("call00002", "search", {"query": "Swift", "limit": 3}),
                    call("call00003", "search", {"query": "Jinja", "limit": 1.5, "exact": True, "lang": None}),
                ],
            },
            {"role": "tool", "tool_call_id": "call00002", "content": "Swift is a language."},
            {"role": "tool", "tool_call_id": "call00003", "content": "Jinja is a template engine."},
        ],
        [SEARCH_TOOL],
    ),
    ([SYSTEM, {"role": "user", "content": "No tool needed: say hi."}], [SEARCH_TOOL]),
]


def text(*parts):
    """Content as a list of parts, as multimodal messages give it: a string is a text part, None
    an image part."""
    return [{"type": "text", "text": part} if part is not None else {"type": "image"} for part in parts]


NO_THINKING = {"enable_thinking": False}
# What the GLM-4.6 template does beyond the conversations above: enable_thinking (a /nothink
# suffix and an empty think block), content as a list of parts (its visible_text macro),
# reasoning kept only after the last user turn, whether from reasoning_content or inline
# <think>, tool calls with or without their function wrapper and arguments as a mapping (with
# values of every JSON type), empty, or a JSON string (which it refuses), tool results given as
# a list, and content that is None or a number.
GLM = [
    ([{"role": "user", "content": "Hello!"}], None, NO_THINKING),
    ([{"role": "user", "content": "Be quick /nothink"}], None, NO_THINKING),
    (
        [
            SYSTEM,
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "4", "reasoning_content": "Two and two."},
            {"role": "user", "content": "And 3 + 3?"},
        ],
        None,
        {"enable_thinking": True},
    ),
    ([{"role": "user", "content": text("Describe ", None, "this picture.")}], None, None),
    ([{"role": "user", "content": text("Briefly ", "/nothink")}], None, NO_THINKING),
    (
        [
            {"role": "system", "content": text("You are terse.", "\nAnswer in one word.")},
            {"role": "user", "content": ["Plain string part, ", {"type": "text", "text": "then a text part."}]},
            {"role": "assistant", "content": text("Understood.")},
            {"role": "user", "content": "Good."},
        ],
        None,
        None,
    ),
    (
        [
            {"role": "user", "content": "Solve x + 1 = 3"},
            {"role": "assistant", "content": "x = 2", "reasoning_content": "\n  Subtract one from both sides.  \n"},
        ],
        None,
        None,
    ),
    (
        [
            {"role": "user", "content": "Think first."},
            {"role": "assistant", "content": "<think>\nThe user wants thought.\n</think>\n\nDone thinking."},
        ],
        None,
        None,
    ),
    (
        [
            {"role": "user", "content": "Think first."},
            {"role": "assistant", "content": "Half a thought\n</think>\nThe rest.", "reasoning_content": None},
            {"role": "user", "content": "Again."},
            {"role": "assistant", "content": "<think>old</think>Old answer.", "reasoning_content": ""},
        ],
        None,
        None,
    ),
    (
        [
            {"role": "user", "content": "What's the weather in Zürich and in Köln?"},
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "I need both cities.",
                "tool_calls": [
                    call("c1", "get_weather", {"city": "Zürich"}),
                    call("c2", "get_weather", {"city": "Köln", "unit": "celsius"}),
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "18 °C"},
            {"role": "tool", "tool_call_id": "c2", "content": "12 °C"},
            {"role": "assistant", "content": "Zürich 18 °C, Köln 12 °C.", "reasoning_content": "Both are in."},
        ],
        [WEATHER_TOOL],
        None,
    ),
    (
        [
            SYSTEM,
            {"role": "user", "content": "Search, then search again."},
            {"role": "assistant", "content": "<think>First Swift.</think>", "tool_calls": [call("s1", "search", {"query": "Swift"})]},
            {"role": "tool", "tool_call_id": "s1", "content": "Swift is a language."},
            {"role": "assistant", "content": None, "tool_calls": [call("s2", "search", {"query": "Jinja"})]},
            {"role": "tool", "tool_call_id": "s2", "content": "Jinja is a template engine."},
        ],
        [SEARCH_TOOL],
        NO_THINKING,
    ),
    (
        [
            {"role": "user", "content": "Search with odd arguments."},
            {
                "role": "assistant",
                "tool_calls": [
                    call(
                        "a1",
                        "search",
                        {
                            "query": "say \"hi\" — ünï",
                            "limit": 3,
                            "ratio": 0.5,
                            "exact": False,
                            "lang": None,
                            "filters": {"site": "example.org", "years": [2024, 2025]},
                            "tags": ["a", "ß"],
                        },
                    )
                ],
            },
            {"role": "tool", "tool_call_id": "a1", "content": "Nothing found."},
        ],
        [SEARCH_TOOL],
        None,
    ),
    (
        [
            {"role": "user", "content": "Call with nothing."},
            {"role": "assistant", "content": "Calling.", "tool_calls": [call("e1", "search", {}), call("e2", "search", None)]},
        ],
        [SEARCH_TOOL],
        None,
    ),
    (
        [
            {"role": "user", "content": "Call without the wrapper."},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
            {"role": "tool", "content": "-3 °C"},
        ],
        [WEATHER_TOOL],
        None,
    ),
    (
        [
            {"role": "user", "content": "Arguments as a JSON string."},
            {"role": "assistant", "content": "", "tool_calls": [call("j1", "get_weather", "{\"city\": \"Paris\"}")]},
        ],
        [WEATHER_TOOL],
        None,
    ),
    (
        [
            {"role": "user", "content": "Two results in one message."},
            {"role": "assistant", "content": "", "tool_calls": [call("l1", "search", {"query": "x"})]},
            {"role": "tool", "content": [{"output": "first result"}, "second result"]},
        ],
        [SEARCH_TOOL],
        None,
    ),
    (
        [
            {"role": "tool", "content": "A result before anything else."},
            {"role": "user", "content": "What was that?"},
        ],
        [SEARCH_TOOL],
        None,
    ),
    (
        [
            {"role": "user", "content": "Weather in Rome, no thinking."},
            {"role": "assistant", "content": "", "tool_calls": [call("r1", "get_weather", {"city": "Rome", "unit": "fahrenheit"})]},
            {"role": "tool", "tool_call_id": "r1", "content": "{\"temperature\": 77}"},
            {"role": "assistant", "content": "It is 77 °F in Rome."},
            {"role": "user", "content": "Thanks /nothink"},
        ],
        [WEATHER_TOOL, SEARCH_TOOL],
        NO_THINKING,
    ),
    (
        [
            {"role": "user", "content": "Empty answers."},
            {"role": "assistant", "content": "   "},
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "", "reasoning_content": "   "},
        ],
        None,
        None,
    ),
    ([{"role": "user", "content": 42}, {"role": "assistant", "content": 3.5}], None, None),
]

# Conversations a template is given beyond the plain ones and those with tools.
EXTRA = {"zai-org-GLM-4.6": GLM}


def conversations(name, with_tools):
    """(messages, tools, variables) triples: the plain ones, then those with tools where the
    template has them, then the template's own; variables are further template inputs."""
    cases = [(messages, None, None) for messages in PLAIN]
    if with_tools:
        cases += [(messages, tools, None) for messages, tools in TOOLS]
    return cases + EXTRA.get(name, [])


def render(template, messages, tools, variables, add_generation_prompt, bos, eos):
    """apply_chat_template's render call: special tokens that are None are not passed, further
    inputs (enable_thinking, …) are."""
    specials = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    return template.render(
        messages=messages,
        tools=tools,
        documents=None,
        add_generation_prompt=add_generation_prompt,
        **specials,
        **(variables or {}),
    )


def main():
    os.makedirs(OUT, exist_ok=True)
    env = environment()
    for name, (source_file, bos, eos, with_tools) in TEMPLATES.items():
        if source_file is None:
            with open(os.path.join(ROOT, "models", "austen-moe", "tokenizer_config.json"), encoding="utf-8") as f:
                config = json.load(f)
            source = config["chat_template"]
            bos, eos = config.get("bos_token"), config.get("eos_token")
            with open(os.path.join(OUT, name + ".jinja"), "w", encoding="utf-8") as f:
                f.write(source)
        else:
            shutil.copyfile(os.path.join(LLAMA_CPP, source_file), os.path.join(OUT, name + ".jinja"))
            with open(os.path.join(OUT, name + ".jinja"), encoding="utf-8") as f:
                source = f.read()
        template = env.from_string(source)
        cases = []
        for messages, tools, variables in conversations(name, with_tools):
            for add_generation_prompt in (False, True):
                case = {"messages": messages, "add_generation_prompt": add_generation_prompt}
                if tools is not None:
                    case["tools"] = tools
                if variables is not None:
                    case["variables"] = variables
                try:
                    case["expected"] = render(template, messages, tools, variables, add_generation_prompt, bos, eos)
                except jinja2.exceptions.TemplateError as error:
                    case["error"] = str(error)
                cases.append(case)
        fixture = {"template": name + ".jinja", "now": NOW.isoformat(), "cases": cases}
        if bos is not None:
            fixture["bos_token"] = bos
        if eos is not None:
            fixture["eos_token"] = eos
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(fixture, f, ensure_ascii=False, indent=1)
            f.write("\n")
        rendered = sum("expected" in case for case in cases)
        print(f"{name}: {rendered} rendered, {len(cases) - rendered} raised")


if __name__ == "__main__":
    main()
