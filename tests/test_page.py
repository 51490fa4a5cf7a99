"""The page at `/`, driven in a real headless Chromium: suggestions as you type, Tab accepts, the sentiment
bar and tinted words, a typed <script> shown as text, and a 360 px wide screen without sideways scrolling.

Skipped where no browser can start (no Chromium or selenium), except where NLP_LSTM_REQUIRE_BROWSER=1
(`.ci/run` sets it after installing Chromium): there a missing browser fails."""

from __future__ import annotations

import os

import pytest
from nextword_helpers import write_model_folder
from sentiment_helpers import tiny_sentiment_model
from serve_helpers import running

from nlp_lstm.serve.browser import browser_missing, headless_chrome

MISSING = browser_missing()
if MISSING and os.environ.get("NLP_LSTM_REQUIRE_BROWSER") != "1":
    pytest.skip(f"no headless browser: {MISSING}", allow_module_level=True)


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    from nlp_lstm.serve.models import load_served

    assert MISSING is None, MISSING
    models = {
        "sentiment": load_served("sentiment", tiny_sentiment_model(tmp_path_factory)[1]),
        "nextword": load_served("nextword", write_model_folder(tmp_path_factory.mktemp("page") / "nextword")),
    }
    with running(models) as client:
        yield f"http://127.0.0.1:{client.port}/"


@pytest.fixture(scope="module")
def driver():
    chrome = headless_chrome(1000, 800)
    yield chrome
    chrome.quit()


def wait(driver, condition, seconds: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(lambda _: condition())


def test_suggestions_appear_and_tab_accepts_the_first(driver, page_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(page_url)
    box = driver.find_element(By.ID, "text")
    box.send_keys("the movie was ")
    buttons = wait(driver, lambda: driver.find_elements(By.CSS_SELECTOR, "#suggestions button"))
    first = buttons[0].text
    assert first and len(buttons) <= 3
    box.send_keys(Keys.TAB)
    assert wait(driver, lambda: box.get_attribute("value") == f"the movie was {first} ")


def test_the_sentiment_bar_and_tinted_words(driver, page_url):
    from selenium.webdriver.common.by import By

    driver.get(page_url)
    driver.find_element(By.ID, "text").send_keys("A wonderful, moving film.")
    spans = wait(driver, lambda: driver.find_elements(By.CSS_SELECTOR, "#words span"))
    assert [span.text for span in spans] == ["A", "wonderful,", "moving", "film."]  # the text as typed
    assert all(span.value_of_css_property("background-color") not in ("", "rgba(0, 0, 0, 0)") for span in spans)
    verdict = wait(driver, lambda: driver.find_element(By.ID, "verdict").text)
    assert verdict.startswith(("neg, P(pos) =", "pos, P(pos) ="))
    assert "%" in driver.find_element(By.ID, "marker").get_attribute("style")  # the bar's marker moved


def test_a_typed_script_is_shown_as_text_and_never_runs(driver, page_url):
    from selenium.webdriver.common.by import By

    driver.get(page_url)
    piece = "<script>window.pwned=1</script><img/src=x/onerror=window.pwned=2>"
    typed = f"{piece} great film"
    driver.find_element(By.ID, "text").send_keys(typed)
    spans = wait(driver, lambda: [s for s in driver.find_elements(By.CSS_SELECTOR, "#words span") if s.text])
    shown = " ".join(span.text for span in spans)
    assert piece in [span.text for span in spans], shown  # the markup, as typed, is text on the page
    assert driver.execute_script("return window.pwned === undefined")
    assert not driver.find_elements(By.CSS_SELECTOR, "#words script, #words img, #suggestions img")


def test_usable_360_px_wide(page_url):
    from selenium.webdriver.common.by import By

    narrow = headless_chrome(360, 740)
    try:
        narrow.get(page_url)
        narrow.find_element(By.ID, "text").send_keys("the movie was a wonderful and moving film with a fine cast ")
        wait(narrow, lambda: narrow.find_elements(By.CSS_SELECTOR, "#words span"))
        width = narrow.execute_script("return document.documentElement.scrollWidth")
        viewport = narrow.execute_script("return window.innerWidth")
        assert width <= viewport, f"the page is {width} px wide on a {viewport} px screen"
    finally:
        narrow.quit()
