"""bot.log_redaction: WeCom external ids never reach a log line in clear."""

from __future__ import annotations

import logging

from bot import log_redaction


def test_external_ids_are_hashed_in_every_logger(caplog):
    original = logging.getLogRecordFactory()
    try:
        log_redaction.install()
        log_redaction.install()  # idempotent
        # A logger of its own: other tests configure Rasa's loggers' levels.
        name = "concierge.test.redaction"
        with caplog.at_level(logging.INFO, logger=name):
            logging.getLogger(name).info(
                "processing kf:%s and wecom:%s", "wmAbCdEf0123456789xyz", "advisor_li"
            )
        [record] = [r for r in caplog.records if r.name == name]
        text = record.getMessage()
        assert "wmAbCdEf0123456789xyz" not in text
        assert text.startswith("processing kf:wm#") and "wecom:advisor_li" in text
        assert log_redaction.redact("wmAbCdEf0123456789xyz") == text.split("kf:")[1].split()[0]
    finally:
        logging.setLogRecordFactory(original)


def test_short_words_and_ordinary_text_are_left_alone():
    for text in ("wm", "women", "wow such text", "order 12 for wecom:li"):
        assert log_redaction.redact(text) == text
