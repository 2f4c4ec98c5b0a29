"""Accessibility smoke test: labels, the progress bar's ARIA, keyboard use, a phone-sized page."""

from __future__ import annotations

from collections.abc import Callable

from uihelp import PHONE, BrowserPage, expect, tid

from serverproc import ServerProcess

UNLABELLED_CONTROLS = """(form) => {
    const named = (element) => {
        if ([...element.labels ?? []].some((label) => label.textContent.trim() !== '')) return true;
        if ((element.getAttribute('aria-label') ?? '').trim() !== '') return true;
        const ids = (element.getAttribute('aria-labelledby') ?? '').split(/\\s+/).filter(Boolean);
        return ids.some((id) => (document.getElementById(id)?.textContent ?? '').trim() !== '');
    };
    return [...form.querySelectorAll('input, select, textarea')]
        .filter((element) => element.type !== 'hidden' && !named(element))
        .map((element) => element.outerHTML);
}"""

ACTIVE = """() => document.activeElement?.getAttribute('data-testid')
    ?? document.activeElement?.tagName"""


def test_labels_progress_bar_aria_keyboard_submit_and_a_375px_job_page(
    launch: Callable[..., BrowserPage], no_auth_server: ServerProcess
) -> None:
    desktop = launch()
    page = desktop.page
    page.goto(f"{no_auth_server.url}/new")
    form = page.locator(tid("submit-form"))
    expect(page.locator(tid("kind-select"))).to_be_enabled()

    # Every control of every kind's form has a label.
    kinds = page.locator(f"{tid('kind-select')} option").evaluate_all(
        "(options) => options.map((option) => option.value)"
    )
    assert {"video", "pdf", "task", "character", "media"} <= set(kinds), kinds
    for kind in kinds:
        page.select_option(tid("kind-select"), kind)
        expect(form.locator("fieldset")).to_have_count(1)
        unlabelled = form.evaluate(UNLABELLED_CONTROLS)
        assert unlabelled == [], f"{kind}: controls without a label: {unlabelled}"

    # The keyboard alone: Tab from the top of the page reaches the submit button; Enter submits.
    page.select_option(tid("kind-select"), "video")
    page.fill(tid("param-prompt"), "Submitted with the keyboard")
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    reached = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate(ACTIVE))
        if reached[-1] == "submit-button":
            break
    assert reached[-1] == "submit-button", f"Tab went through {reached}"
    assert "kind-select" in reached and "param-prompt" in reached, reached
    focus_ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert focus_ring != "none", "the focused submit button shows no focus ring"
    page.keyboard.press("Enter")
    page.wait_for_url("**/jobs/*")
    job_url = page.url

    # The progress bar speaks: role, range, value, text and a name; the dot is a live status.
    bar = page.get_by_role("progressbar", name="Job progress")
    expect(bar).to_have_attribute("aria-valuemin", "0")
    expect(bar).to_have_attribute("aria-valuemax", "100")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(bar).to_have_attribute("aria-valuetext", "100%")
    expect(page.locator(tid("connection-dot"))).to_have_attribute("role", "status")
    expect(page.get_by_role("heading", level=1)).to_have_text("Video job")

    # A 375 px wide phone: nothing sticks out sideways, the player fits.
    phone = launch(viewport=PHONE, suffix="375px")
    phone.page.goto(job_url)
    expect(phone.page.locator(tid("job-status"))).to_have_text("completed")
    expect(phone.page.locator(tid("result-video"))).to_be_visible()
    phone.page.wait_for_function(
        "() => document.querySelector('[data-testid=\"result-video\"]').readyState >= 2"
    )
    phone.page.evaluate(
        """async () => {  // a frame from the middle, not a loading spinner, for the screenshot
            const video = document.querySelector('[data-testid="result-video"]');
            video.muted = true;
            await video.play();
            while (video.currentTime < video.duration / 2) {
                await new Promise((resolve) => setTimeout(resolve, 20));
            }
            video.pause();
        }"""
    )
    overflow = phone.page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter((element) => element.getBoundingClientRect().right > window.innerWidth + 1)
            .map((element) => element.tagName + '.' + element.className)
            .slice(0, 10)"""
    )
    assert overflow == [], f"wider than the 375 px screen: {overflow}"
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.screenshot(docs="job-page-mobile.png")
