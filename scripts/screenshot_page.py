"""A screenshot of the page at `/` with trained models, for README and docs (docs/page.png).

Starts `nlp-lstm serve` on a free loopback port, opens the page in the headless Chromium of the browser
test (`nlp_lstm.serve.browser`), types a review, waits for the suggestions and the tinted words, and
saves a PNG.

    python scripts/screenshot_page.py --sentiment saved_models/sentiment --nextword saved_models/nextword
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

from nlp_lstm.serve.browser import browser_missing, headless_chrome

REVIEW = "Not bad at all. The acting was wonderful and the story moved me, though the ending was a bit "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentiment", metavar="DIR", required=True)
    parser.add_argument("--nextword", metavar="DIR", required=True)
    parser.add_argument("--out", default="docs/page.png", help="the PNG to write (default: %(default)s)")
    parser.add_argument("--text", default=REVIEW, help="what to type")
    args = parser.parse_args(argv)
    if (missing := browser_missing()) is not None:
        parser.error(missing)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "nlp_lstm.cli", "serve", "--port", str(port)]
    command += ["--sentiment", args.sentiment, "--nextword", args.nextword]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    driver = None
    try:
        for line in server.stdout:
            if "listening on" in line:
                break
        else:
            raise SystemExit("screenshot_page: the server did not start")
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        driver = headless_chrome(760, 520)
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "text").send_keys(args.text)
        wait = WebDriverWait(driver, 60, poll_frequency=0.1)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions button"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#words span")) >= len(args.text.split()))
        time.sleep(0.5)  # the last paint
        driver.save_screenshot(args.out)
        print(f"wrote {args.out}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
