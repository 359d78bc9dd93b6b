"""The sweep report opens in headless Chromium with no console error and every plot rendered."""
from __future__ import annotations

import shutil

import pytest
import yaml

from imcflow.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _spec(tmp_path):
    spec = {"name": "report", "axes": {"model": "resnet18-paper", "array": ["64x64", "128x128", "128x256"],
                                       "cell_bits": [1, 2], "weight_bits": 8, "adc_bits": [6, 8],
                                       "mapping": ["im2col", "sdk", "vwsdk", "flex", "opt-energy"],
                                       "geometry": "paper"}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_report_writes_the_page_and_the_pngs(tmp_path):
    assert main(["sweep", str(_spec(tmp_path)), "--out", str(tmp_path / "s"), "--workers", "1",
                 "--quiet"]) == 0
    page = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "s"), "--out", str(page), "--plot", str(tmp_path / "png")]) == 0
    text = page.read_text()
    assert text.count('<img class="plot"') == 4 and text.count("data:image/png;base64,") == 4
    assert "<svg" not in text and "http" not in text.split("<body>")[1]  # self-contained
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "crossbar_layout.png", "pareto.png", "per_layer.png", "utilization.png"]
    assert main(["report", str(tmp_path / "s"), "--out", str(tmp_path / "no" / "r.html")]) == 2


@pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                    reason="chromium/chromedriver not installed (apt-get install chromium chromium-driver)")
def test_report_renders_in_headless_chromium(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    assert main(["sweep", str(_spec(tmp_path)), "--out", str(tmp_path / "s"), "--workers", "1",
                 "--quiet"]) == 0
    page = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "s"), "--out", str(page)]) == 0
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2400"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(page.as_uri())
        state = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight,"
            " i.alt]);")
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert driver.title.startswith("imcflow sweep report")
        driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
    assert errors == []
    assert len(state) == 4, state
    for complete, width, height, alt in state:
        assert complete and width > 100 and height > 100, alt
    assert (tmp_path / "report.png").stat().st_size > 10_000
