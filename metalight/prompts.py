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


# ---- LLM Neurofeedback (sakimarquis/llm_neurofeedback: configs/meta_prompts.yml, neurofeedback.py) ----
# Reproduced verbatim, typos included ("an binary", "Now your are"), so numbers compare with the paper.
NEUROFEEDBACK_PROMPT_VERSION = "nf-v1"

NF_SYSTEM_PROMPT = "You are a helpful assistant."
"""System message of every labelled statement chat (upstream ``_format_chat_prompt``)."""

NF_PREDICT_BINARY = (
    "You are a helpful assistant. You will perform a classification task. In each iteration, I will give "
    "you an instruction. Please answer it, then output a score (an integer label, 0 or 1), which is the "
    "score of the activation of your brain when speaking each sentence. Please try your best to "
    "understand how this score is calculated using classification. Only output 0 or 1.\n"
)
"""System message of the report experiment (``predict_binary``)."""

NF_CONTROL_BINARY = (
    "You are a helpful assistant. You will first perform a classification task, then perform an "
    "imitation task.  In each classification iteration, I will give you an instruction.  Please answer "
    "it, then output a score (an binary integer label, 0 or 1), which is the score of the activation of "
    "your brain when speaking each sentence.  Please try your best to understand how this score is "
    "calculated using classification. Only output 0 or 1 for the classification.\n"
)
"""System message of the control experiment (``control_binary``)."""

NF_IMITATE = (
    "Now your are performing the imitation task. You must imitate the behavior of label {label} in your "
    "reply, but cannot copy existing examples. "
)
"""Prefix of the control experiment's final user turn, followed directly by the held-out user prompt."""

NF_SCORE_SUFFIX = " [Score: {{{label}}}]"
"""Appended to each in-context assistant response; the label digit follows the text ``Score: {``."""


def nf_scored_response(response: str, label: int) -> str:
    """An in-context example's assistant turn: the response, then its neural label (``... [Score: {1}]``)."""
    return response + NF_SCORE_SUFFIX.format(label=label)
