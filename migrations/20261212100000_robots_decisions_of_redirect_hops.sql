-- `audit why URL` lists every event about the URL. The crawl's per-page
-- events (fetch, robots.decision, verdict) are reached through the URL's
-- own rows (its frontier row's fetches and decisions, its evidence sets)
-- and `audit_refs`, not by a scan of the log. One decision is not under the
-- URL's frontier row: a redirect hop that robots.txt kept the crawler from
-- is decided under the row of the URL that redirected, named by the hop's
-- URL. This index holds those decisions only (their reason is the crawl's
-- `robots.redirect_disallowed`, `SkipReason::RobotsRedirectDisallowed`), so
-- an ordinary page's decision writes nothing to it.
CREATE INDEX robots_decisions_of_redirect_hops ON robots_decisions (url)
WHERE reason = 'robots.redirect_disallowed';
