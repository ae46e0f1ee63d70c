"""Bucket events: SNS deliveries of S3 notifications (recorded bodies, re-signed with a locally generated
certificate served by a local server; objects in moto's S3) and Azure Event Grid deliveries, and the
classify_bucket backfill."""

import base64
import datetime
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from django.core.management import call_command

from classification.models import BackendCall, Image, ImageSource, Prediction

RECORDED = Path(__file__).parent / "events"
SNS_ENDPOINT = "/api/v1/events/s3/"
GRID_ENDPOINT = "/api/v1/events/azure/"
TOPIC = "arn:aws:sns:us-west-2:123456789012:MyTopic"

pytestmark = pytest.mark.django_db


def recorded(name: str):
    return json.loads((RECORDED / name).read_text())


@pytest.fixture(scope="module")
def signing_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-west-2.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def sns(settings, picture_server, allow_loopback, signing_key):
    """Our topic accepted; the signing certificate and the SubscribeURL on the local server, which the
    patterns allow (as they allow AWS's SNS hosts in production)."""
    key, pem = signing_key
    picture_server.serve("/SimpleNotificationService-local.pem", pem, content_type="application/x-x509-ca-cert")
    base = re.escape(picture_server.base)
    settings.SPOTCHECK_SNS_TOPIC_ARNS = [TOPIC]
    settings.SPOTCHECK_SNS_CERT_URL_PATTERN = rf"^{base}/[A-Za-z0-9._-]+\.pem$"
    settings.SPOTCHECK_SNS_SUBSCRIBE_URL_PATTERN = rf"^{base}/confirm\?Action=ConfirmSubscription&"

    def sign(message: dict, *, version: str = "1") -> dict:
        """Sign as SNS does (written from AWS's description, independently of the code under test)."""
        message = {"Timestamp": now(), **message, "SignatureVersion": version}
        message["SigningCertURL"] = picture_server.url(PEM_PATH)
        if message["Type"] == "Notification":
            keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        else:
            keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
        text = "".join(f"{k}\n{message[k]}\n" for k in keys if k in message)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        message["Signature"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), digest)).decode()
        return message

    return {"sign": sign, "server": picture_server}


PEM_PATH = "/SimpleNotificationService-local.pem"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fresh(name: str) -> dict:
    """A recorded SNS body, as if sent just now."""
    return {**recorded(name), "Timestamp": now()}


def post_sns(client, message: dict):
    # SNS posts its JSON as text/plain.
    return client.post(SNS_ENDPOINT, data=json.dumps(message), content_type="text/plain; charset=UTF-8")


def test_subscription_confirmation_is_verified_and_confirmed(client, sns):
    message = fresh("sns_subscription_confirmation.json")
    confirm = f"/confirm?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=t"
    sns["server"].serve(confirm, b"<ConfirmSubscriptionResponse/>", content_type="text/xml")
    message["SubscribeURL"] = sns["server"].url(confirm)
    response = post_sns(client, sns["sign"](message))
    assert response.status_code == 200 and response.json() == {"confirmed": TOPIC}
    assert [s.path.split("?")[0] for s in sns["server"].seen] == [PEM_PATH, "/confirm"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_s3_object_created_notification_classifies_the_new_object(
    client, sns, media_bucket, dealer_blue_jpeg, django_capture_on_commit_callbacks, version
):
    media_bucket.put_object(Bucket="spotcheck-media", Key="uploads/blue car.jpg", Body=dealer_blue_jpeg)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_sns(client, sns["sign"](fresh("sns_s3_object_created.json"), version=version))
    assert response.status_code == 200
    # The removal and the other bucket's object are not ours to classify.
    assert response.json() == {"queued": ["s3://spotcheck-media/uploads/blue car.jpg"]}
    source = ImageSource.objects.get()
    assert source.url == "s3://spotcheck-media/uploads/blue car.jpg"
    assert Prediction.objects.get(image=source.image, attribute="image_type").value == "Dealer"


def test_a_tampered_notification_is_refused_and_nothing_is_classified(
    client, sns, media_bucket, dealer_blue_jpeg, django_capture_on_commit_callbacks
):
    media_bucket.put_object(Bucket="spotcheck-media", Key="uploads/blue car.jpg", Body=dealer_blue_jpeg)
    message = sns["sign"](fresh("sns_s3_object_created.json"))
    message["Message"] = message["Message"].replace("blue+car", "other")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_sns(client, message)
    assert response.status_code == 403 and response.json()["error"]["code"] == "invalid_signature"
    assert not Image.objects.exists()


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://sns.us-west-2.amazonaws.com.attacker.example/SimpleNotificationService-x.pem",
        "http://169.254.169.254/latest/meta-data/x.pem",
        "{base}/elsewhere/cert.pem",
    ],
    ids=["lookalike-host", "metadata", "other-path"],
)
def test_a_certificate_url_off_the_allowed_hosts_is_never_fetched(client, sns, cert_url):
    message = sns["sign"](fresh("sns_s3_test_event.json"))
    message["SigningCertURL"] = cert_url.format(base=sns["server"].base)
    response = post_sns(client, message)
    assert response.status_code == 403 and response.json()["error"]["code"] == "untrusted_certificate"
    assert sns["server"].seen == []


def test_the_recorded_signature_of_another_key_does_not_verify(client, sns):
    message = sns["sign"](fresh("sns_s3_test_event.json"))
    message["Signature"] = recorded("sns_subscription_confirmation.json")["Signature"]
    assert post_sns(client, message).status_code == 403


def test_a_notification_from_another_topic_is_refused(client, sns):
    message = fresh("sns_s3_test_event.json")
    message["TopicArn"] = "arn:aws:sns:us-west-2:999999999999:Elsewhere"
    response = post_sns(client, sns["sign"](message))
    assert response.status_code == 403 and response.json()["error"]["code"] == "unknown_topic"


def test_the_s3_test_event_is_accepted_and_queues_nothing(client, sns, media_bucket):
    response = post_sns(client, sns["sign"](fresh("sns_s3_test_event.json")))
    assert response.status_code == 200 and response.json() == {"queued": []}


def test_a_genuine_message_replayed_hours_later_is_refused(client, sns):
    message = sns["sign"]({**recorded("sns_s3_test_event.json"), "Timestamp": "2026-01-02T17:50:00.912Z"})
    message_now = sns["sign"](fresh("sns_s3_test_event.json"))
    assert post_sns(client, message_now).status_code == 200
    response = post_sns(client, message)
    assert response.status_code == 403 and response.json()["error"]["code"] == "stale"


def test_a_body_over_256_kib_is_413_before_it_is_read(client, sns):
    response = client.post(SNS_ENDPOINT, data="x" * (256 * 1024 + 1), content_type="text/plain")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert sns["server"].seen == []


def test_a_body_that_is_not_json_is_400(client, sns):
    response = client.post(SNS_ENDPOINT, data="not json", content_type="text/plain")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


@pytest.fixture
def hook():
    """A local HTTP endpoint that keeps what is POSTed to it (where moto's SNS delivers)."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_a_notification_delivered_and_signed_by_motos_sns_is_verified_and_classified(
    client, sns, hook, moto_server, media_bucket, stock_red_jpeg, django_capture_on_commit_callbacks
):
    """moto's SNS signs each delivery with its own key and keeps the certificate; the test serves that
    certificate locally (SigningCertURL is not part of what is signed) and replays the delivery to us."""
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    media_bucket.put_object(Bucket="spotcheck-media", Key="uploads/blue car.jpg", Body=stock_red_jpeg)
    client_sns = boto3.client("sns", endpoint_url=moto_server, region_name="us-west-2")
    arn = client_sns.create_topic(Name="MyTopic")["TopicArn"]
    url, bodies = hook
    client_sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=url)
    client_sns.publish(TopicArn=arn, Message=recorded("sns_s3_object_created.json")["Message"])
    (delivered,) = [json.loads(body) for body in bodies]
    name = delivered["SigningCertURL"].rsplit("/", 1)[1]
    pem = sns_backends[DEFAULT_ACCOUNT_ID]["us-west-2"]._message_public_keys[name]
    sns["server"].serve(f"/{name}", pem, content_type="application/x-x509-ca-cert")
    delivered["SigningCertURL"] = sns["server"].url(f"/{name}")

    with django_capture_on_commit_callbacks(execute=True):
        response = post_sns(client, delivered)
    assert response.status_code == 200, response.json()
    assert response.json() == {"queued": ["s3://spotcheck-media/uploads/blue car.jpg"]}
    assert ImageSource.objects.get().image.predictions.get(attribute="image_type").value == "Stock"

    delivered["Message"] = delivered["Message"].replace("blue+car", "red+car")
    assert post_sns(client, delivered).status_code == 403


# --- Event Grid ---------------------------------------------------------------------------------------


@pytest.fixture
def grid(settings, picture_server, allow_loopback):
    settings.SPOTCHECK_EVENTGRID_KEY = "grid-secret"
    settings.SPOTCHECK_EVENTGRID_BLOB_PREFIXES = [picture_server.url("/testcontainer/")]
    return picture_server


def post_grid(client, events, key="grid-secret"):
    return client.post(f"{GRID_ENDPOINT}?key={key}", data=json.dumps(events), content_type="application/json")


def test_event_grid_validation_handshake_answers_the_code(client, grid):
    response = post_grid(client, recorded("eventgrid_subscription_validation.json"))
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


@pytest.mark.parametrize("key", ["", "wrong"])
def test_event_grid_without_the_key_is_refused(client, grid, key):
    response = post_grid(client, recorded("eventgrid_subscription_validation.json"), key=key)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


def test_event_grid_blob_created_classifies_the_blob_through_the_guarded_fetch(
    client, grid, stock_red_jpeg, django_capture_on_commit_callbacks
):
    grid.serve("/testcontainer/Auto.jpg", stock_red_jpeg)
    events = recorded("eventgrid_blob_created.json")
    for event in events:
        event["data"]["url"] = event["data"]["url"].replace(
            "https://my-storage-account.blob.core.windows.net", grid.base
        )
    with django_capture_on_commit_callbacks(execute=True):
        response = post_grid(client, events)
    assert response.status_code == 200
    assert response.json() == {"queued": [grid.url("/testcontainer/Auto.jpg")]}  # the deletion is ignored
    image = ImageSource.objects.get(url=grid.url("/testcontainer/Auto.jpg")).image
    assert Prediction.objects.get(image=image, attribute="image_type").value == "Stock"


@pytest.mark.parametrize(
    "url",
    [
        "https://my-storage-account.blob.core.windows.net/testcontainer/Auto.jpg",  # not an allowed prefix
        "{base}/testcontainer/../private/x.jpg",
        "{base}/testcontainer/Auto.jpg?sv=2020&sig=abc",
    ],
    ids=["other-account", "dot-dot", "query"],
)
def test_event_grid_blobs_outside_the_allowed_prefixes_are_ignored(client, grid, url):
    events = recorded("eventgrid_blob_created.json")[:1]
    events[0]["data"]["url"] = url.format(base=grid.base)
    response = post_grid(client, events)
    assert response.status_code == 200 and response.json() == {"queued": []}
    assert grid.seen == []


# --- backfill -----------------------------------------------------------------------------------------


def test_classify_bucket_backfills_a_prefix_with_progress_and_usage(media_bucket, stock_red_jpeg, dealer_blue_jpeg):
    put = media_bucket.put_object
    put(Bucket="spotcheck-media", Key="uploads/2026/a.jpg", Body=stock_red_jpeg)
    put(Bucket="spotcheck-media", Key="uploads/2026/b.jpg", Body=dealer_blue_jpeg)
    put(Bucket="spotcheck-media", Key="uploads/2026/copy-of-a.jpg", Body=stock_red_jpeg)
    put(Bucket="spotcheck-media", Key="uploads/2026/readme.txt", Body=b"not a picture")
    put(Bucket="spotcheck-media", Key="elsewhere/c.jpg", Body=dealer_blue_jpeg)
    out, err = io.StringIO(), io.StringIO()
    call_command("classify_bucket", "uploads/2026/", stdout=out, stderr=err)
    assert "[" + "#" * 30 + "] 4/4" in err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0] == "4 objects under 'uploads/2026/': 2 classified, 1 known already, 1 refused (not_an_image)"
    assert lines[1] == "pictures sent: builtin 2; estimated cost 0.0000"
    assert Image.objects.count() == 2 and BackendCall.objects.count() == 2
    assert not ImageSource.objects.filter(url__contains="elsewhere").exists()


def test_classify_bucket_without_a_bucket_is_a_command_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No bucket"):
        call_command("classify_bucket", "uploads/")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem", True),
        ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", True),
        ("http://sns.us-west-2.amazonaws.com/SimpleNotificationService-abc.pem", False),
        ("https://sns.us-west-2.amazonaws.com.attacker.example/SimpleNotificationService-abc.pem", False),
        ("https://sns.us-west-2.amazonaws.com@attacker.example/x.pem", False),
        ("https://s3.amazonaws.com/attacker-bucket/x.pem", False),
        ("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-abc.pem?x=1", False),
    ],
)
def test_the_default_certificate_pattern_allows_only_aws_sns_hosts(url, allowed):
    from config import settings as defaults

    assert bool(re.match(defaults.SPOTCHECK_SNS_CERT_URL_PATTERN, url)) is allowed
