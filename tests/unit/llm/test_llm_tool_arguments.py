import pytest

from coherex.llm.errors import LLMResponseError
from coherex.llm.types import parse_tool_arguments


def test_plain_json_object():
    assert parse_tool_arguments('{"code": "print(1)"}') == {"code": "print(1)"}


def test_empty_arguments_are_an_empty_object():
    assert parse_tool_arguments("") == {}
    assert parse_tool_arguments(None) == {}


@pytest.mark.parametrize(
    "raw",
    [
        '```json\n{"city": "Paris"}\n```',  # fenced
        'Sure! {"city": "Paris"}',  # chatter before the object
        '{"city": "Paris",}',  # trailing comma
        '{"city": "Paris"',  # cut off before the closing brace
        '{"city": "Par',  # cut off inside a string (still a dict, value truncated)
    ],
)
def test_common_slips_are_repaired(raw):
    value = parse_tool_arguments(raw, "weather")
    assert isinstance(value, dict)
    assert value["city"].startswith("Par")


@pytest.mark.parametrize("raw", ["[1, 2]", '"just a string"', "not json at all"])
def test_anything_but_an_object_is_a_clear_error(raw):
    with pytest.raises(LLMResponseError, match="`weather`.*not a JSON object"):
        parse_tool_arguments(raw, "weather")
