"""The lab's prompt limits: characters, then the model's positions in tokens, each cut with a notice."""
import pytest

from core.paths import DEMO_RUN_DIR
from core.lab import MAX_PROMPT_CHARS, LabInputError, fit_prompt, max_prompt_tokens
from core.loading import load_causal_lm

DEMO_MODEL = DEMO_RUN_DIR.parent.parent / "models" / "demo"
pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").exists(), reason="demo model not built")


@pytest.fixture(scope="module")
def lm():
    return load_causal_lm(DEMO_MODEL)


def tokens(lm, text: str) -> int:
    return len(lm.tokenizer(text)["input_ids"])


def test_a_short_prompt_is_read_whole(lm):
    fitted = fit_prompt(lm.tokenizer, lm.config, "The father of Bouzei Hulir is", 20)
    assert fitted.text == "The father of Bouzei Hulir is" and not fitted.notices


@pytest.mark.parametrize("prompt", ["😀" * MAX_PROMPT_CHARS, "The father of Bouzei Hulir is " * 60, "ab" * 5000])
def test_a_long_prompt_is_cut_to_the_models_positions_keeping_its_end(lm, prompt):
    new_tokens = 20
    fitted = fit_prompt(lm.tokenizer, lm.config, prompt, new_tokens)
    limit = max_prompt_tokens(lm.config, new_tokens)
    assert limit == lm.config.max_position_embeddings - new_tokens
    assert tokens(lm, fitted.text) <= limit and fitted.tokens == tokens(lm, fitted.text)
    assert fitted.tokens >= limit - 4  # cut, not emptied
    assert prompt[:MAX_PROMPT_CHARS].endswith(fitted.text)
    assert any("tokens" in n for n in fitted.notices)
    assert (len(prompt) > MAX_PROMPT_CHARS) == any("characters" in n for n in fitted.notices)


def test_an_empty_prompt_is_refused(lm):
    with pytest.raises(LabInputError, match="empty"):
        fit_prompt(lm.tokenizer, lm.config, "  \n ", 5)
