"""Callback verification and decryption against Tencent's published WXBizMsgCrypt sample, plus the
ways a callback can be forged, stale or malformed."""

from __future__ import annotations

import json

import pytest

from bot.wecom.crypto import CallbackCrypto, parse_xml
from bot.wecom.errors import DecryptError, MalformedCallback, SignatureError
from tests.wecom.fixtures import load_json

SAMPLE = load_json("tencent_sample.json")


def sample_crypto(**kwargs) -> CallbackCrypto:
    kwargs.setdefault("max_skew_s", None)  # the sample is from 2014
    return CallbackCrypto(SAMPLE["token"], SAMPLE["encoding_aes_key"], SAMPLE["corp_id"], **kwargs)


def test_url_verification_with_tencent_sample():
    v = SAMPLE["verify_url"]
    assert (
        sample_crypto().verify_url(v["msg_signature"], v["timestamp"], v["nonce"], v["echostr"])
        == v["reply"]
    )


def test_decrypts_tencent_sample_message():
    m = SAMPLE["message"]
    xml = sample_crypto().decrypt_xml(m["body"], m["msg_signature"], m["timestamp"], m["nonce"])
    doc = parse_xml(xml)
    assert doc["FromUserName"] == m["from_user"]
    assert doc["Content"] == m["content"]
    assert doc["MsgId"] == m["msg_id"]


def test_signature_matches_tencent_sample():
    m = SAMPLE["message"]
    encrypt = parse_xml(m["body"])["Encrypt"]
    assert sample_crypto().signature(m["timestamp"], m["nonce"], encrypt) == m["msg_signature"]


def test_forged_signature_is_refused():
    v = SAMPLE["verify_url"]
    with pytest.raises(SignatureError):
        sample_crypto().verify_url("0" * 40, v["timestamp"], v["nonce"], v["echostr"])
    m = SAMPLE["message"]
    with pytest.raises(SignatureError):  # right signature, but for another nonce
        sample_crypto().decrypt_xml(m["body"], m["msg_signature"], m["timestamp"], "999")


def test_stale_timestamp_is_refused_even_with_a_valid_signature():
    m = SAMPLE["message"]
    crypto = sample_crypto(max_skew_s=300, clock=lambda: 1409659813 + 301)
    with pytest.raises(SignatureError, match="stale"):
        crypto.decrypt_xml(m["body"], m["msg_signature"], m["timestamp"], m["nonce"])
    ok = sample_crypto(max_skew_s=300, clock=lambda: 1409659813 + 299)
    assert "hello" in ok.decrypt_xml(m["body"], m["msg_signature"], m["timestamp"], m["nonce"])


def test_missing_parameters_are_refused():
    m = SAMPLE["message"]
    with pytest.raises(SignatureError):
        sample_crypto().decrypt_xml(m["body"], None, m["timestamp"], m["nonce"])


def test_other_receive_id_cannot_decrypt():
    m = SAMPLE["message"]
    other = CallbackCrypto(
        SAMPLE["token"], SAMPLE["encoding_aes_key"], "ww_other_corp", max_skew_s=None
    )
    with pytest.raises(DecryptError):
        other.decrypt_xml(m["body"], m["msg_signature"], m["timestamp"], m["nonce"])


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not xml at all",
        b"<xml><Encrypt>",
        b"<root><Encrypt>x</Encrypt></root>",
        b"<xml><ToUserName>x</ToUserName></xml>",
        b"\xff\xfe\x00garbage",
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>',
    ],
)
def test_malformed_xml_bodies(body):
    with pytest.raises(MalformedCallback):
        sample_crypto().decrypt_xml(body, "sig", "1", "2")


def test_signed_garbage_ciphertext_is_a_decrypt_error():
    crypto = sample_crypto()
    garbage = "bm90IGEgY2lwaGVydGV4dA=="
    body = f"<xml><Encrypt><![CDATA[{garbage}]]></Encrypt></xml>"
    with pytest.raises(DecryptError):
        crypto.decrypt_xml(body, crypto.signature("1", "2", garbage), "1", "2")


def test_aibot_json_round_trip_with_empty_receive_id():
    crypto = CallbackCrypto("tok", SAMPLE["encoding_aes_key"], "")
    body, params = crypto.encrypt_json({"msgid": "1", "text": {"content": "你好"}})
    assert crypto.decrypt_json(body, **params)["text"]["content"] == "你好"
    reply = json.loads(crypto.passive_json_reply({"msgtype": "text", "text": {"content": "欢迎"}}))
    assert set(reply) == {"encrypt", "msgsignature", "timestamp", "nonce"}
    decoded = crypto.decrypt_json(
        json.dumps({"encrypt": reply["encrypt"]}),
        reply["msgsignature"],
        reply["timestamp"],
        reply["nonce"],
    )
    assert decoded["text"]["content"] == "欢迎"


@pytest.mark.parametrize("body", [b"", b"[]", b'{"encrypt": 5}', b"{not json", b'{"other": "x"}'])
def test_malformed_json_bodies(body):
    with pytest.raises(MalformedCallback):
        CallbackCrypto("tok", SAMPLE["encoding_aes_key"], "").decrypt_json(body, "s", "1", "2")


def test_encrypted_non_json_payload_is_malformed():
    crypto = CallbackCrypto("tok", SAMPLE["encoding_aes_key"], "")
    sealed = crypto.encrypt("<xml>not json</xml>")
    with pytest.raises(MalformedCallback):
        crypto.decrypt_json(
            json.dumps({"encrypt": sealed["encrypt"]}),
            sealed["msgsignature"],
            sealed["timestamp"],
            sealed["nonce"],
        )


def test_bad_key_length_is_a_configuration_error():
    with pytest.raises(ValueError):
        CallbackCrypto("tok", "short", "corp")
