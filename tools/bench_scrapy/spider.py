"""The Scrapy side of tools/bench_scrapy.sh: a CrawlSpider with one
LinkExtractor rule that follows every in-scope link and writes each page's
visible body text to JSONL, obeying robots.txt, no delay."""

import sys

from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class ManualSpider(CrawlSpider):
    name = "manuals"

    def __init__(self, seeds="", hosts="", *a, **kw):
        self.start_urls = [s for s in seeds.split(",") if s]
        # Same scope as byline's default (--scope host): the seeds' host:port.
        self.allowed_domains = [h for h in hosts.split(",") if h]
        self.rules = (Rule(LinkExtractor(), callback="parse_page", follow=True),)
        super().__init__(*a, **kw)

    def parse_start_url(self, response):
        return self.parse_page(response)

    def parse_page(self, response):
        text = " ".join(
            t.strip()
            for t in response.xpath(
                "//body//text()[not(ancestor::script) and not(ancestor::style)]"
            ).getall()
            if t.strip()
        )
        yield {"url": response.url, "title": response.css("title::text").get(), "text": text}


if __name__ == "__main__":
    sys.exit("run with: scrapy runspider spider.py")
