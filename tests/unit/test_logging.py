import json
import logging

from bot.runtime.logsetup import setup_logging


def test_secrets_never_reach_the_log_in_either_format(capsys):
    for fmt in ("text", "json"):
        setup_logging("INFO", fmt, ("signing-secret-value",))
        logging.getLogger("t").warning("token %s and %s", "xoxb-111-222-abc", "signing-secret-value")
        try:
            raise RuntimeError("failed with xapp-1-secret")
        except RuntimeError:
            logging.getLogger("t").exception("boom")
        err = capsys.readouterr().err
        assert "xoxb-111" not in err and "signing-secret-value" not in err and "xapp-1-secret" not in err
        assert "[redacted]" in err
        if fmt == "json":
            entries = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
            assert entries[0]["level"] == "WARNING"
            assert "exception" in entries[1]
    logging.getLogger().handlers.clear()
