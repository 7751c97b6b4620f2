"""Who a conversation is with: the Rasa sender id scheme, parsed in one place.

- `kf:<external_userid>`: a 微信客服 guest (`kf:_system` for account-level news);
- `wecom:<userid>`: a 智能机器人 user or an advisor in the self-built app. An id starting
  `wm`/`wo` is a WeCom external contact (a guest), whose 微信客服 chat has the same
  external_userid;
- anything else (`rest` tests, the console) is kept as it is, scheme "".

The string form is what Rasa, the CRM and the inbox store, so it never changes shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional


class Scheme(str, Enum):
    KF = "kf"
    WECOM = "wecom"
    OTHER = ""


EXTERNAL_CONTACT_PREFIXES = ("wm", "wo")  # WeCom external contact ids
WECOM_SCHEMES = (Scheme.KF, Scheme.WECOM)


@dataclass(frozen=True)
class SenderId:
    scheme: Scheme
    local: str

    @classmethod
    def parse(cls, value: str) -> "SenderId":
        head, sep, rest = (value or "").partition(":")
        if sep and head in (Scheme.KF.value, Scheme.WECOM.value):
            return cls(Scheme(head), rest)
        return cls(Scheme.OTHER, value or "")

    @classmethod
    def kf(cls, external_userid: str) -> "SenderId":
        return cls(Scheme.KF, external_userid)

    @classmethod
    def wecom(cls, userid: str) -> "SenderId":
        return cls(Scheme.WECOM, userid)

    def __str__(self) -> str:
        return (
            f"{self.scheme.value}:{self.local}" if self.scheme is not Scheme.OTHER else self.local
        )

    @property
    def is_kf(self) -> bool:
        return self.scheme is Scheme.KF

    @property
    def is_wecom(self) -> bool:
        """Any WeCom sender (kf or wecom), as opposed to rest / console ids."""
        return self.scheme in WECOM_SCHEMES

    @property
    def is_external_contact(self) -> bool:
        """A `wecom:` sender who is a guest (external contact), not a member of staff."""
        return self.scheme is Scheme.WECOM and self.local.startswith(EXTERNAL_CONTACT_PREFIXES)

    @property
    def external_userid(self) -> Optional[str]:
        """The guest's WeCom external_userid (a kf guest, or an external contact), else None."""
        if self.scheme is Scheme.KF:
            return self.local or None
        return self.local if self.is_external_contact else None


KF_SYSTEM = SenderId.kf("_system")


def kf_sender(external_userid: str) -> str:
    return str(SenderId.kf(external_userid))


def wecom_sender(userid: str) -> str:
    return str(SenderId.wecom(userid))


def is_wecom_sender(value: str) -> bool:
    return SenderId.parse(value).is_wecom
