"""The course's hello-world service: `/` greets, `/health` answers the image's HEALTHCHECK."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "from zero to hero"


@app.route("/health")
def health():
    return {"status": "ok"}


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=5000)
