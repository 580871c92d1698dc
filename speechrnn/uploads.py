"""What an HTTP upload to `speechrnn serve` holds: the body itself (`curl --data-binary @x.wav`, the page's fetch),
or the first file of a multipart/form-data body (`curl -F file=@x.wav`, an HTML form)."""

from email.parser import BytesParser
from email.policy import HTTP

from .errors import UserError

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")  # curl -F; curl --data-binary's default


def uploaded_file(body: bytes, content_type: str) -> bytes:
    """The bytes the client meant to send: the first part of a multipart/form-data body that carries a file (else
    its first part), or the body as it is for any other Content-Type."""
    if not content_type.lower().startswith("multipart/form-data"):
        return body
    if "boundary=" not in content_type:
        raise UserError("a multipart/form-data upload without a boundary in its Content-Type; send the file as the "
                        "body, or let curl -F or the browser build the form")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)
    parts = [part for part in message.iter_parts() if not part.is_multipart()]
    if not parts:
        raise UserError("the multipart/form-data upload holds no part; add the file as a form field "
                        "(curl -F file=@x.wav)")
    chosen = next((part for part in parts if part.get_filename()), parts[0])
    return chosen.get_payload(decode=True) or b""
