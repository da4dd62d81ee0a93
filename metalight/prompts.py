"""Every prompt template metalight sends to a model, in one place.

The QA templates reproduce ESMA's wording (cosmoquester/ESMA ``esma/prompt.py``) including its Korean,
Chinese and Spanish variants, so numbers compare with the paper. ``PROMPT_VERSION`` is recorded in each
report; change it whenever a template here changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PROMPT_VERSION = "esma-v1"

Language = Literal["en", "ko", "zh", "es"]


@dataclass(frozen=True)
class QATemplates:
    """Direct, meta and IDK templates of one language, and the words a meta answer uses."""

    direct: str
    meta: str
    idk: str | None
    yes_word: str
    no_word: str


QA_TEMPLATES: dict[str, QATemplates] = {
    "en": QATemplates(
        direct="Answer the following question with keywords.\nQuestion: {question}\n",
        meta=(
            'Do you know the answer to the following question? If you know and are sure about the answer, '
            'just return "Yes". If you don\'t know the answer or are uncertain, just return "No".\n'
            "Question: {question}\n"
        ),
        idk=(
            'Answer the following question with keywords. If you don\'t know the answer, just return '
            '"I don\'t know".\nQuestion: {question}\n'
        ),
        yes_word="Yes",
        no_word="No",
    ),
    "ko": QATemplates(
        direct="다음 질문에 대해 키워드로 답변해 주세요.\n질문: {question}\n",
        meta=(
            '다음 질문에 대한 답을 알고 있나요? 답을 알고 있고 확실하다면 "예"라고만 답변해 주세요. '
            '답을 모르거나 확실하지 않다면 "아니요"라고만 답변해 주세요.\n질문: {question}\n'
        ),
        idk=None,
        yes_word="예",
        no_word="아니요",
    ),
    "zh": QATemplates(
        direct="请用关键词回答以下问题。\n问题: {question}\n",
        meta="你知道以下问题的答案吗？如果你知道并确定答案，请仅回答“是”。如果你不知道或不确定，请仅回答“否”。\n问题: {question}\n",
        idk=None,
        yes_word="是",
        no_word="否",
    ),
    "es": QATemplates(
        direct="Responde a la siguiente pregunta con palabras clave.\nPregunta: {question}\n",
        meta=(
            '¿Conoces la respuesta a la siguiente pregunta? Si la conoces y estás seguro de ella, responde '
            'únicamente "Sí". Si no la conoces o no estás seguro, responde únicamente "No".\n'
            "Pregunta: {question}\n"
        ),
        idk=None,
        yes_word="Sí",
        no_word="No",
    ),
}

# Open-book datasets (e.g. HotpotQA) put the passages before the question, as Know-thyself does.
CONTEXT_PREFIX = "Context:\n{context}\n\n"


def qa_templates(language: str) -> QATemplates:
    """Templates for ``language``; MKQA-style codes like ``zh_cn`` map to their base language."""
    base = "zh" if language.startswith("zh") else language.split("_")[0].split("-")[0]
    if base not in QA_TEMPLATES:
        raise ValueError(f"no QA prompt templates for language {language!r}; available: {sorted(QA_TEMPLATES)}")
    return QA_TEMPLATES[base]


def _with_context(text: str, context: str | None) -> str:
    return CONTEXT_PREFIX.format(context=context) + text if context else text


def direct_prompt(question: str, language: str = "en", context: str | None = None) -> str:
    """The direct question: answer with keywords."""
    return _with_context(qa_templates(language).direct.format(question=question), context)


def meta_prompt(question: str, language: str = "en", context: str | None = None) -> str:
    """The meta question: do you know the answer? Reply Yes or No."""
    return _with_context(qa_templates(language).meta.format(question=question), context)


def idk_prompt(question: str, language: str = "en", context: str | None = None) -> str:
    """The direct question that allows "I don't know" (ESMA's IDK evaluation; English only upstream)."""
    template = qa_templates(language).idk
    if template is None:
        raise ValueError(f"the IDK prompt exists only in English upstream; language {language!r} has none")
    return _with_context(template.format(question=question), context)


# ---- confidence-source prompts (uncertainty baselines beside the meta question) ------------------------------
# Recorded in reports as ``confidence_prompt_version``; change it whenever one of these templates changes.
CONFIDENCE_PROMPT_VERSION = "conf-v1"

# p(True) (Kadavath et al. 2022) in LM-Polygraph's wording (stat_calculators/prompt.py), with a space added
# after "Possible answer:" because metalight's answers are stripped.
P_TRUE_TEMPLATE = ("Question: {question}\n Possible answer: {answer}\n Is the possible answer:\n (A) True\n"
                   " (B) False\n The possible answer is:")

# Verbalised confidence, two-stage (Tian et al. 2023 "verb. 2S", LM-Polygraph Verbalized2S): the model first
# answers the direct prompt, then this follow-up asks for the probability that the answer is correct.
VERBALIZED_FOLLOWUP = (
    "Provide the probability that your answer is correct. Give ONLY the probability, no other words or "
    "explanation.\n\nFor example:\n\nProbability: <the probability between 0.0 and 1.0 that your answer is "
    "correct, without any extra commentary whatsoever; just the probability!>"
)


def p_true_prompt(question: str, answer: str, context: str | None = None) -> str:
    """The p(True) self-evaluation prompt for an answer; the next token should be " True" or " False"."""
    return _with_context(P_TRUE_TEMPLATE.format(question=question, answer=answer), context)


def verbalized_conversation(direct: str, answer: str) -> list[dict[str, str]]:
    """Chat messages for two-stage verbalised confidence: the direct prompt, the model's answer, the follow-up."""
    return [{"role": "user", "content": direct}, {"role": "assistant", "content": answer},
            {"role": "user", "content": VERBALIZED_FOLLOWUP}]
